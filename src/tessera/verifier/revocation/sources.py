"""Event sources for ``RevocationFollower``.

- ``HttpFeedSource``: the identity service's snapshot, range (``/revocations?after=``)
  and server-sent-event feed; needs nothing but HTTP (client credentials with the
  ``tessera:events`` scope).
- ``RedisStreamSource``: the Redis stream (production fan-out) for the tail, with the
  snapshot and ranges from the identity service.
- ``BusSource``: any ``tessera.bus`` bus in the same process (the embedded default).

Each passes on the watermarks that come with the events (``FeedBatch.watermark``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import orjson
from httpx_sse import aconnect_sse

from tessera import _extras
from tessera.bus.ports import BusGap, BusUnavailable, EventBus, WireBatch, event_to_wire
from tessera.core.freshness import Watermark, WatermarkError
from tessera.core.revocation_snapshot import COLUMNS_MEDIA_TYPE
from tessera.verifier.errors import InvalidEvent
from tessera.verifier.revocation.follower import FeedBatch, ResyncRequired, SourceUnavailable

__all__ = ["BusSource", "HttpFeedSource", "RedisStreamSource"]

Snapshot = Callable[[], Awaitable[Mapping[str, Any]]]
Range = Callable[[int], Awaitable[Mapping[str, Any]]]


class HttpFeedSource:
    def __init__(self, issuer: str, *, client_id: str, client_secret: str,
                 transport: httpx.AsyncBaseTransport | None = None,
                 heartbeat_timeout: float = 5.0, timeout: float = 10.0) -> None:
        self._base = issuer.rstrip("/")
        self._client = httpx.AsyncClient(transport=transport, auth=(client_id, client_secret),
                                         timeout=timeout)
        self._read_timeout = heartbeat_timeout

    async def _get_json(self, what: str, path: str, *, accept: str = "application/json",
                        **params: Any) -> Mapping[str, Any]:
        try:
            response = await self._client.get(f"{self._base}{path}", params=params or None,
                                              headers={"accept": accept})
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"{what}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise SourceUnavailable(f"{what}: HTTP {response.status_code}")
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise SourceUnavailable(f"{what}: not JSON") from None
        if not isinstance(body, dict):
            raise InvalidEvent(f"{what}: not an object")
        return body

    has_snapshot = True

    async def snapshot(self) -> Mapping[str, Any]:
        """The snapshot as columns (an identity service that does not know that shape
        answers with events; ``RevocationState.load_snapshot`` takes both)."""
        return await self._get_json("snapshot", "/revocations/snapshot",
                                    accept=f"{COLUMNS_MEDIA_TYPE}, application/json;q=0.5")

    async def events_after(self, after: int) -> Mapping[str, Any]:
        return await self._get_json("range", "/revocations", after=after)

    async def follow(self, after: int) -> AsyncIterator[FeedBatch]:
        """The server-sent-event feed from ``after`` on (``httpx-sse`` reads the frames)."""
        timeout = httpx.Timeout(10.0, read=self._read_timeout)
        try:
            async with aconnect_sse(self._client, "GET", f"{self._base}/revocations/events",
                                    headers={"last-event-id": str(after)},
                                    timeout=timeout) as source:
                if source.response.status_code != 200:
                    raise SourceUnavailable(f"feed: HTTP {source.response.status_code}")
                async for event in source.aiter_sse():
                    if event.event == "revocation":
                        yield FeedBatch([orjson.loads(event.data)])
                    elif event.event == "heartbeat":
                        yield FeedBatch(watermark=_heartbeat_watermark(event.data))
                    elif event.event == "resync":
                        raise ResyncRequired("the feed lost our cursor")
            raise SourceUnavailable("feed closed")
        except httpx.HTTPError as exc:  # SSEError (not an event stream) included
            raise SourceUnavailable(f"feed: {type(exc).__name__}") from None
        except orjson.JSONDecodeError:
            raise SourceUnavailable("feed: malformed event") from None

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        """The authenticated client (the ack reporter shares it)."""
        return self._client

    @property
    def base_url(self) -> str:
        return self._base


def _heartbeat_watermark(data: str) -> Watermark | None:
    body = orjson.loads(data)
    wire = body.get("watermark") if isinstance(body, dict) else None
    if wire is None:
        return None
    try:
        return Watermark.from_wire(wire)
    except WatermarkError as exc:
        raise InvalidEvent(f"feed: {exc}") from None


class BusSource:
    """Follows a bus object directly (same process). ``snapshot`` and ``events_after``
    reach the source of truth; without ``snapshot`` the follower starts from the bus's
    beginning (it must hold every event), without ``events_after`` a gap reloads the
    snapshot."""

    def __init__(self, bus: EventBus, *, snapshot: Snapshot | None = None,
                 events_after: Range | None = None, heartbeat: float = 1.0) -> None:
        self._bus = bus
        self._snapshot = snapshot
        self._range = events_after
        self._heartbeat = heartbeat

    @property
    def has_snapshot(self) -> bool:
        return self._snapshot is not None

    async def snapshot(self) -> Mapping[str, Any]:
        if self._snapshot is None:
            return {"seq": 0, "events": []}
        return await self._snapshot()

    async def events_after(self, after: int) -> Mapping[str, Any]:
        if self._range is None:
            raise ResyncRequired("no range source: reload the snapshot")
        return await self._range(after)

    async def follow(self, after: int) -> AsyncIterator[FeedBatch | WireBatch]:
        try:
            async with contextlib.aclosing(self._batches(after)) as batches:
                async for batch in batches:  # closed with this feed: the bus's reader too
                    yield batch
        except BusGap:
            if self._snapshot is None and self._range is None:
                raise SourceUnavailable("the bus lost events and no snapshot is configured")\
                    from None
            raise ResyncRequired("the bus lost events after our cursor") from None
        except BusUnavailable as exc:
            raise SourceUnavailable(str(exc)) from None

    async def _batches(self, after: int) -> AsyncGenerator[FeedBatch | WireBatch, None]:
        """The bus's batches as the follower applies them: wire dicts plus a watermark."""
        async for batch in self._bus.follow(after, heartbeat=self._heartbeat):
            yield FeedBatch([_with_timing(event_to_wire(e), batch.timing) for e in batch],
                            watermark=batch.watermark)

    async def aclose(self) -> None:
        return None


def _with_timing(wire: dict[str, Any], timing: Mapping[int, Mapping[str, float]]
                 ) -> dict[str, Any]:
    """The event plus the stamps the bus knows for it (``"timing"``, see
    ``tessera.bus.ports.TIMING_KEYS``): telemetry for the propagation stages; applying
    the event ignores it."""
    stamps = timing.get(wire["seq"])
    if stamps:
        wire["timing"] = dict(stamps)
    return wire


class RedisStreamSource(BusSource):
    """The Redis stream for the tail; snapshot and ranges come from the identity service."""

    def __init__(self, redis_url: str, *, snapshot_from: HttpFeedSource,
                 stream: str = "tessera:revocations", heartbeat: float = 1.0) -> None:
        _extras.require("verifier", "the Redis revocation source")
        from tessera.bus.redis_streams import RedisStreamsBus

        self._redis_bus = RedisStreamsBus.from_url(redis_url, stream=stream)
        self._http = snapshot_from
        super().__init__(self._redis_bus, snapshot=snapshot_from.snapshot,
                         events_after=snapshot_from.events_after, heartbeat=heartbeat)

    @property
    def http(self) -> HttpFeedSource:
        return self._http

    def _batches(self, after: int) -> AsyncGenerator[WireBatch, None]:
        """The stream's events as it holds them: nothing converted per event."""
        return self._redis_bus.follow_wire(after, heartbeat=self._heartbeat)

    async def aclose(self) -> None:
        await self._redis_bus.aclose()
        await self._http.aclose()
