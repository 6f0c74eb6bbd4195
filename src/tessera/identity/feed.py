"""What verifiers in other processes need from the source of truth: a snapshot, the
events after a cursor (paged, to fill a gap), a resumable server-sent-event feed
(``Last-Event-ID`` / ``?after=``) served from this process's in-process bus, which the
outbox relay fills, and a place to report what they applied (``identity.completion``).

Every answer that reads the outbox carries a watermark (``tessera.core.freshness``):
``{"head": seq, "at": t, "epoch": e}`` — every event committed before ``t`` has a seq at or
below ``head``. ``t`` is taken before the read. Snapshot and range answers come from the
store itself (``epoch`` null); the feed passes on the relay's watermarks (``epoch``: this
process's bus).

All need client authentication (HTTP Basic) by a client holding ``tessera:events``.

- ``GET /revocations/snapshot`` → ``{"seq", "events", "watermark"}``; with ``Accept:
  application/vnd.tessera.revocation-snapshot.columns+json`` the same events as parallel
  arrays (``tessera.core.revocation_snapshot``: what ``HttpFeedSource`` asks for, loaded
  by a verifier without building an object per event)
- ``GET /revocations?after=SEQ[&limit=N]`` → ``{"events", "next", "watermark"}``: events
  with ``seq > SEQ`` up to the watermark's head, at most ``limit`` (default and maximum
  1000); ``next`` is the ``after`` of the next page, ``null`` on the last one.
- ``GET /revocations/events``: SSE frames ``id: <seq>`` + ``event: revocation`` + ``data:
  <event JSON>``; ``event: heartbeat`` with ``{"seq": <cursor>, "watermark": {...}|null}``
  every ``heartbeat`` seconds and after each watermark; ``event: resync`` when the
  follower's cursor fell out of the window (fetch the range, or reload the snapshot).
- ``POST /revocations/acks`` (JSON ``{"verifier_id", "service", "cursor", "lag", "age"}``)
  → 204.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tessera.bus import BusGap, InProcessBus, event_to_wire
from tessera.core.clock import Clock
from tessera.core.freshness import Watermark
from tessera.core.revocation_snapshot import COLUMNS_FORMAT, COLUMNS_MEDIA_TYPE, columns_of
from tessera.identity.completion import LogoutCompletion
from tessera.identity.http import read_request, send_error
from tessera.protocol.clients import ClientAuthenticator
from tessera.protocol.errors import (
    InsufficientScope,
    InvalidRequest,
    OAuthError,
    TemporarilyUnavailable,
)
from tessera.protocol.http import Params
from tessera.store.ports import Store, StoreError

__all__ = ["EVENTS_SCOPE", "PAGE_LIMIT", "RevocationFeed"]

EVENTS_SCOPE = "tessera:events"
PAGE_LIMIT = 1000
_MAX_ACK_BODY = 2048
_HEADERS = {"cache-control": "no-store"}
_Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]


class AckReport(BaseModel):
    """A verifier's report of what it applied (batched: one cursor covers every event up
    to it)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    verifier_id: _Name
    service: _Name
    cursor: int = Field(ge=0, le=2**62)
    lag: float | None = Field(default=None, ge=0)
    """The verifier's own staleness (seconds since its newest watermark); null: never
    fresh."""
    age: float = Field(default=0.0, ge=0, le=3600)
    """Seconds since the verifier's cursor reached ``cursor`` (it reports a little late,
    to batch)."""


def _cursor(raw: str) -> int:
    """A sequence number: 1 to 18 ASCII digits (``Last-Event-ID``, ``?after=``, ``limit``);
    ``str.isdigit`` alone would take "²" and "١"."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise InvalidRequest("the cursor must be a non-negative integer")
    return int(raw)


class RevocationFeed:
    def __init__(self, authenticator: ClientAuthenticator, store: Store, bus: InProcessBus,
                 clock: Clock, *, heartbeat: float, completion: LogoutCompletion) -> None:
        self._authenticator = authenticator
        self._store = store
        self._bus = bus
        self._clock = clock
        self._heartbeat = heartbeat
        self._completion = completion

    async def _authorize(self, request: Request, *, max_body: int = 0) -> tuple[str, bytes]:
        """The authenticated client's id and the request body."""
        oauth = await read_request(request, max_body=max_body)
        client = await self._authenticator.authenticate(oauth, Params([]), allow_public=False)
        if EVENTS_SCOPE not in client.scopes:
            raise InsufficientScope(f"the client needs the {EVENTS_SCOPE} scope")
        return client.client_id, oauth.body

    async def snapshot(self, request: Request) -> Response:
        return await _answer(self._snapshot(request))

    async def _snapshot(self, request: Request) -> Response:
        await self._authorize(request)
        at = self._clock.now()
        async with self._store.unit_of_work(read_only=True) as uow:
            seq, events = await uow.revocations.live(at)
        watermark = Watermark(seq, at).to_wire()
        if COLUMNS_MEDIA_TYPE in request.headers.get("accept", ""):
            kinds, columns = columns_of(events)
            return _json({"format": COLUMNS_FORMAT, "seq": seq, "watermark": watermark,
                          "kinds": kinds, "columns": columns},
                         media_type=COLUMNS_MEDIA_TYPE)
        return _json({"seq": seq, "events": [event_to_wire(e) for e in events],
                      "watermark": watermark})

    async def events_after(self, request: Request) -> Response:
        """``GET /revocations?after=SEQ``: one page of the outbox after a cursor."""
        return await _answer(self._events_after(request))

    async def _events_after(self, request: Request) -> Response:
        await self._authorize(request)
        after = _cursor(request.query_params.get("after", ""))
        raw_limit = request.query_params.get("limit")
        limit = PAGE_LIMIT if raw_limit is None else _cursor(raw_limit)
        if not 1 <= limit <= PAGE_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {PAGE_LIMIT}")
        at = self._clock.now()
        async with self._store.unit_of_work(read_only=True) as uow:
            head = await uow.revocations.last_seq()
            events = [e for e in await uow.revocations.since(after, limit=limit)
                      if e.seq is not None and e.seq <= head]
        more = len(events) == limit and events[-1].seq != head
        return _json({"events": [event_to_wire(e) for e in events],
                      "next": events[-1].seq if more else None,
                      "watermark": Watermark(head, at).to_wire()})

    async def acks(self, request: Request) -> Response:
        """``POST /revocations/acks``: a verifier says which seq it has applied."""
        return await _answer(self._acks(request))

    async def _acks(self, request: Request) -> Response:
        client_id, body = await self._authorize(request, max_body=_MAX_ACK_BODY)
        if request.headers.get("content-type", "").split(";")[0].strip() != \
                "application/json":
            raise InvalidRequest("send the report as application/json")
        try:
            report = AckReport.model_validate_json(body)
        except ValidationError:
            raise InvalidRequest("the report must be {verifier_id, service, cursor, "
                                 "lag, age}") from None
        await self._completion.report(client_id, report.verifier_id, report.service,
                                      report.cursor, report.lag, age=report.age)
        return Response(status_code=204, headers=_HEADERS)

    async def events(self, request: Request) -> Response:
        try:
            await self._authorize(request)
            header = request.headers.get("last-event-id")
            query = request.query_params.get("after")
            # a malformed cursor is refused even when the other one is valid
            cursors = [_cursor(v) for v in (header, query) if v is not None]
            cursor = cursors[0] if cursors else 0
        except OAuthError as exc:
            return send_error(exc)
        return StreamingResponse(self._stream(cursor), media_type="text/event-stream",
                                 headers={**_HEADERS, "x-accel-buffering": "no"})

    async def _stream(self, cursor: int) -> AsyncIterator[bytes]:
        try:
            async for batch in self._bus.follow(cursor, heartbeat=self._heartbeat):
                frames = []
                for event in batch:
                    cursor = event.seq or cursor
                    frames.append(b"id: %d\nevent: revocation\ndata: %s\n\n"
                                  % (cursor, orjson.dumps(event_to_wire(event))))
                watermark = batch.watermark.to_wire() if batch.watermark else None
                frames.append(b"event: heartbeat\ndata: "
                              + orjson.dumps({"seq": cursor, "watermark": watermark})
                              + b"\n\n")
                yield b"".join(frames)
        except BusGap:
            yield b"event: resync\ndata: {}\n\n"


async def _answer(handling: Awaitable[Response]) -> Response:
    """The answer, or an OAuth error: the client's (4xx), or the store's (503)."""
    try:
        return await handling
    except OAuthError as exc:
        return send_error(exc)
    except StoreError:
        return send_error(TemporarilyUnavailable("try again shortly"))


def _json(body: dict[str, Any], *, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), media_type=media_type,
                    headers={**_HEADERS, "vary": "accept"})
