"""Redis Streams bus (production): durable, shared by every process and host.

Each event is one stream entry whose ID is ``<seq>-0``, so publishing is idempotent
(Redis refuses an ID at or below the stream's top) and a follower's cursor is simply the
last seq it applied. Each entry also carries ``p``, the seq of the outbox event before it:
a follower reading an entry whose ``p`` is past its cursor has missed events (trimmed by
``maxlen``, or lost when Redis restarted empty and the relay republished only part of the
outbox) and gets ``BusGap``, so it reloads a snapshot instead of skipping them.

Connections use a socket timeout (``socket_timeout``, longer than the blocking read), so a
silently dead connection is noticed and retried instead of blocking forever.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT

from tessera.bus.ports import (
    BusGap,
    BusUnavailable,
    OutboxBatch,
    event_from_wire,
    event_to_wire,
)
from tessera.core.revocation import RevocationEvent

__all__ = ["DEFAULT_STREAM", "RedisStreamsBus"]

DEFAULT_STREAM = "tessera:revocations"


def _seq_of(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0])


class RedisStreamsBus:
    def __init__(self, client: aioredis.Redis, *, stream: str = DEFAULT_STREAM,
                 maxlen: int = 1_000_000, socket_timeout: float | None = None) -> None:
        self._redis = client
        self._stream = stream
        self._maxlen = maxlen
        self._socket_timeout = socket_timeout

    @classmethod
    def from_url(cls, url: str, *, socket_timeout: float = 5.0, **kwargs: Any
                 ) -> RedisStreamsBus:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=2,
                                         socket_timeout=socket_timeout,
                                         health_check_interval=10)
        return cls(client, socket_timeout=socket_timeout, **kwargs)

    async def publish(self, events: Sequence[RevocationEvent]) -> int:
        if not events:
            return 0
        # No read of the top first: Redis refuses an ID at or below it, per entry, which
        # is the idempotence we need, and the common case (fresh events) saves a round trip.
        pipe = self._redis.pipeline(transaction=False)
        prev = events.after if isinstance(events, OutboxBatch) else None
        for event in events:
            assert event.seq is not None, "events on the bus carry their outbox seq"
            fields: dict[FieldT, EncodableT] = {"e": orjson.dumps(event_to_wire(event))}
            if prev is not None:
                fields["p"] = prev
            pipe.xadd(self._stream, fields, id=f"{event.seq}-0", maxlen=self._maxlen,
                      approximate=True)
            prev = event.seq
        try:
            results = await pipe.execute(raise_on_error=False)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BusUnavailable(f"redis: {exc}") from None
        added = 0
        for result in results:
            if isinstance(result, ResponseError) and "equal or smaller" in str(result):
                continue  # published already by another relay: idempotent
            if isinstance(result, Exception):
                raise BusUnavailable(f"redis: {result}")
            added += 1
        return added

    async def last_seq(self) -> int:
        try:
            entries: Any = await self._redis.xrevrange(self._stream, count=1)
            if entries:
                return _seq_of(entries[0][0])
            info = await self._stream_info()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BusUnavailable(f"redis: {exc}") from None
        last: bytes | str | None = info.get("last-generated-id") if info else None
        return _seq_of(last) if last is not None else 0

    async def _stream_info(self) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = await self._redis.xinfo_stream(self._stream)
        except ResponseError:
            return None  # no such stream yet
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in info.items()}

    async def _check_gap(self, cursor: int) -> None:
        """Trimmed entries all precede the first entry still held. Sequence numbers may
        skip (a rolled-back transaction burns one), so a cursor just below the first entry
        is fine; anything further back may have missed trimmed events. Erring towards a
        gap costs the follower a snapshot reload, never a missed revocation."""
        info = await self._stream_info()
        if not info:
            return
        trimmed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
        first = info.get("first-entry")
        if trimmed and first and cursor < _seq_of(first[0]) - 1:
            raise BusGap(f"events after {cursor} were trimmed from {self._stream}")
        if first is None and trimmed and cursor < await self.last_seq():
            raise BusGap(f"events after {cursor} were trimmed from {self._stream}")

    async def follow(self, after: int, *, heartbeat: float = 1.0
                     ) -> AsyncIterator[list[RevocationEvent]]:
        cursor = after
        if self._socket_timeout is not None:  # the blocking read must end well before it
            heartbeat = min(heartbeat, self._socket_timeout / 2)
        block_ms = max(1, int(heartbeat * 1000))
        try:
            await self._check_gap(cursor)
            while True:
                reply: Any = await self._redis.xread({self._stream: f"{cursor}-0"}, count=1000,
                                                block=block_ms)
                batch: list[RevocationEvent] = []
                for _stream, entries in reply or []:
                    for entry_id, fields in entries:
                        prev = fields.get(b"p")
                        if prev is not None and int(prev) > cursor:
                            raise BusGap(f"events {cursor}..{int(prev)} are not on "
                                         f"{self._stream} any more")
                        event = event_from_wire(orjson.loads(fields[b"e"]))
                        batch.append(event)
                        cursor = _seq_of(entry_id)
                yield batch
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BusUnavailable(f"redis: {exc}") from None
        except RedisError as exc:
            raise BusUnavailable(f"redis: {exc}") from None

    async def aclose(self) -> None:
        await self._redis.aclose()
