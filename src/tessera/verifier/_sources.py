"""Event sources for ``RevocationFollower``.

- ``HttpFeedSource``: the identity service's snapshot and server-sent-event feed; needs
  nothing but HTTP (client credentials with the ``tessera:events`` scope).
- ``RedisStreamSource``: the Redis stream (production fan-out) for the tail, with the
  snapshot from the identity service.
- ``BusSource``: any ``tessera.bus`` bus in the same process (the embedded default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import httpx
import orjson

from tessera.bus.ports import BusGap, BusUnavailable, EventBus, event_to_wire
from tessera.verifier._follower import ResyncRequired, SourceUnavailable

__all__ = ["BusSource", "HttpFeedSource", "RedisStreamSource"]

_MAX_SNAPSHOT = 512 * 1024 * 1024
Snapshot = Callable[[], Awaitable[Mapping[str, Any]]]


class HttpFeedSource:
    def __init__(self, issuer: str, *, client_id: str, client_secret: str,
                 transport: httpx.AsyncBaseTransport | None = None,
                 heartbeat_timeout: float = 5.0, timeout: float = 10.0) -> None:
        self._base = issuer.rstrip("/")
        self._client = httpx.AsyncClient(transport=transport, auth=(client_id, client_secret),
                                         timeout=timeout)
        self._read_timeout = heartbeat_timeout

    async def snapshot(self) -> Mapping[str, Any]:
        try:
            response = await self._client.get(f"{self._base}/revocations/snapshot")
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"snapshot: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise SourceUnavailable(f"snapshot: HTTP {response.status_code}")
        body: Mapping[str, Any] = orjson.loads(response.content)
        return body

    async def follow(self, after: int) -> AsyncIterator[list[Mapping[str, Any]]]:
        timeout = httpx.Timeout(10.0, read=self._read_timeout)
        headers = {"last-event-id": str(after), "accept": "text/event-stream"}
        try:
            async with self._client.stream("GET", f"{self._base}/revocations/events",
                                           headers=headers, timeout=timeout) as response:
                if response.status_code != 200:
                    raise SourceUnavailable(f"feed: HTTP {response.status_code}")
                async for frame in _sse_frames(response.aiter_lines()):
                    kind, data = frame
                    if kind == "revocation":
                        yield [orjson.loads(data)]
                    elif kind == "heartbeat":
                        yield []
                    elif kind == "resync":
                        raise ResyncRequired("the feed lost our cursor")
            raise SourceUnavailable("feed closed")
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"feed: {type(exc).__name__}") from None
        except orjson.JSONDecodeError:
            raise SourceUnavailable("feed: malformed event") from None

    async def aclose(self) -> None:
        await self._client.aclose()


async def _sse_frames(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) per server-sent event (WHATWG HTML §9.2.6, the fields we use)."""
    kind: str = "message"
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield kind, "\n".join(data)
            kind, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)


class BusSource:
    """Follows a bus object directly (same process). ``snapshot`` is needed only when the
    bus lost events (trimmed); without it the follower starts from the bus's beginning."""

    def __init__(self, bus: EventBus, *, snapshot: Snapshot | None = None,
                 heartbeat: float = 1.0) -> None:
        self._bus = bus
        self._snapshot = snapshot
        self._heartbeat = heartbeat

    async def snapshot(self) -> Mapping[str, Any]:
        if self._snapshot is None:
            return {"seq": 0, "events": []}
        return await self._snapshot()

    async def follow(self, after: int) -> AsyncIterator[list[Mapping[str, Any]]]:
        try:
            async for batch in self._bus.follow(after, heartbeat=self._heartbeat):
                yield [event_to_wire(e) for e in batch]
        except BusGap:
            if self._snapshot is None:
                raise SourceUnavailable("the bus lost events and no snapshot is configured")\
                    from None
            raise ResyncRequired("the bus lost events after our cursor") from None
        except BusUnavailable as exc:
            raise SourceUnavailable(str(exc)) from None

    async def aclose(self) -> None:
        return None


class RedisStreamSource(BusSource):
    """The Redis stream for the tail; the snapshot comes from the identity service."""

    def __init__(self, redis_url: str, *, snapshot_from: HttpFeedSource,
                 stream: str = "tessera:revocations", heartbeat: float = 1.0) -> None:
        from tessera.bus.redis_streams import RedisStreamsBus

        self._redis_bus = RedisStreamsBus.from_url(redis_url, stream=stream)
        self._http = snapshot_from
        super().__init__(self._redis_bus, snapshot=snapshot_from.snapshot, heartbeat=heartbeat)

    async def aclose(self) -> None:
        await self._redis_bus.aclose()
        await self._http.aclose()
