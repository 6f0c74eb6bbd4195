"""Revocation state for verifiers in other processes: a snapshot and a resumable
server-sent-event feed (``Last-Event-ID`` / ``?after=``), served from this process's
in-process bus, which the outbox relay fills.

Both need client authentication (HTTP Basic) by a client holding ``tessera:events``.
SSE frames: ``id: <seq>`` + ``event: revocation`` + ``data: <event JSON>``; every
``heartbeat`` seconds ``event: heartbeat`` with ``{"seq": <cursor>}``; ``event: resync``
when the follower's cursor fell out of the window (reload the snapshot).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tessera.bus import BusGap, InProcessBus, event_to_wire
from tessera.core.clock import Clock
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

__all__ = ["EVENTS_SCOPE", "RevocationFeed"]

EVENTS_SCOPE = "tessera:events"


def _cursor_ok(value: str) -> bool:
    """A sequence number: 1 to 18 ASCII digits (``Last-Event-ID`` or ``?after=``); a
    malformed one is refused even when the other names a valid cursor."""
    return value.isascii() and value.isdigit() and len(value) <= 18


class RevocationFeed:
    def __init__(self, authenticator: ClientAuthenticator, store: Store, bus: InProcessBus,
                 clock: Clock, *, heartbeat: float) -> None:
        self._authenticator = authenticator
        self._store = store
        self._bus = bus
        self._clock = clock
        self._heartbeat = heartbeat

    async def _authorize(self, request: Request) -> None:
        oauth = await read_request(request, max_body=0)
        client = await self._authenticator.authenticate(oauth, Params([]), allow_public=False)
        if EVENTS_SCOPE not in client.scopes:
            raise InsufficientScope(f"the client needs the {EVENTS_SCOPE} scope")

    async def snapshot(self, request: Request) -> Response:
        try:
            await self._authorize(request)
            async with self._store.unit_of_work(read_only=True) as uow:
                seq, events = await uow.revocations.live(self._clock.now())
            return Response(orjson.dumps({"seq": seq,
                                          "events": [event_to_wire(e) for e in events]}),
                            media_type="application/json",
                            headers={"cache-control": "no-store"})
        except OAuthError as exc:
            return send_error(exc)
        except StoreError:
            return send_error(TemporarilyUnavailable("try again shortly"))

    async def events(self, request: Request) -> Response:
        try:
            await self._authorize(request)
            header = request.headers.get("last-event-id")
            query = request.query_params.get("after")
            if any(v is not None and not _cursor_ok(v) for v in (header, query)):
                raise InvalidRequest("the cursor must be a non-negative integer")
            raw = header or query or "0"
        except OAuthError as exc:
            return send_error(exc)
        return StreamingResponse(self._stream(int(raw)), media_type="text/event-stream",
                                 headers={"cache-control": "no-store",
                                          "x-accel-buffering": "no"})

    async def _stream(self, cursor: int) -> AsyncIterator[bytes]:
        try:
            async for batch in self._bus.follow(cursor, heartbeat=self._heartbeat):
                if not batch:
                    yield b"event: heartbeat\ndata: " + orjson.dumps({"seq": cursor}) + b"\n\n"
                    continue
                frames = []
                for event in batch:
                    cursor = event.seq or cursor
                    frames.append(b"id: %d\nevent: revocation\ndata: %s\n\n"
                                  % (cursor, orjson.dumps(event_to_wire(event))))
                yield b"".join(frames)
        except BusGap:
            yield b"event: resync\ndata: {}\n\n"
