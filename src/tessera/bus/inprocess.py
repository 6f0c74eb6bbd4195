"""In-process bus (embedded default): one process, no server. Holds a bounded window of
recent events; a follower whose cursor fell out of the window gets ``BusGap``.

Its epoch is random per instance: a restarted process has a new bus, and a follower
that reconnects to another process's feed sees another epoch (and checks its position
with the source of truth, ``tessera.core.freshness``)."""

from __future__ import annotations

import asyncio
import bisect
import secrets
from collections.abc import AsyncIterator, Sequence

from tessera.bus.ports import BusBatch, BusGap, OutboxBatch
from tessera.core.freshness import Watermark
from tessera.core.revocation import RevocationEvent
from tessera.core.worker import wait_event

__all__ = ["InProcessBus"]


class InProcessBus:
    def __init__(self, *, capacity: int = 100_000) -> None:
        self._events: list[RevocationEvent] = []
        self._seqs: list[int] = []
        self._capacity = capacity
        self._trimmed_through = 0
        self._changed = asyncio.Event()
        self.epoch = secrets.token_hex(8)
        self.watermark: Watermark | None = None
        """The latest watermark the relay marked (``None`` before the first)."""

    async def publish(self, events: Sequence[RevocationEvent]) -> int:
        added = 0
        for event in events:
            assert event.seq is not None, "events on the bus carry their outbox seq"
            if self._seqs and event.seq <= self._seqs[-1]:
                continue
            self._events.append(event)
            self._seqs.append(event.seq)
            added += 1
        if len(self._events) > self._capacity:
            cut = len(self._events) - self._capacity
            self._trimmed_through = self._seqs[cut - 1]
            del self._events[:cut], self._seqs[:cut]
        complete_at = events.complete_at if isinstance(events, OutboxBatch) else None
        head = events[-1].seq if events else None
        if complete_at is not None and head is not None:
            self.watermark = Watermark(head, complete_at, self.epoch)
        if added or complete_at is not None:
            self._wake()
        return added

    async def last_seq(self) -> int:
        return self._seqs[-1] if self._seqs else self._trimmed_through

    async def mark(self, head: int, at: float) -> Watermark:
        if head > await self.last_seq():
            raise ValueError(f"watermark head {head} is past the bus's last event")
        self.watermark = Watermark(head, at, self.epoch)
        self._wake()
        return self.watermark

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _after(self, cursor: int) -> list[RevocationEvent]:
        if cursor < self._trimmed_through:
            raise BusGap(f"events after {cursor} were trimmed")
        return self._events[bisect.bisect_right(self._seqs, cursor):]

    async def follow(self, after: int, *, heartbeat: float = 1.0) -> AsyncIterator[BusBatch]:
        cursor = after
        sent: Watermark | None = None
        while True:
            changed = self._changed
            watermark = self.watermark  # read before the events: it covers no more
            batch = self._after(cursor)
            if batch:
                cursor = batch[-1].seq or cursor
                sent = watermark
                yield BusBatch(batch, watermark=watermark)
                continue
            if watermark is not sent:
                sent = watermark
                yield BusBatch(watermark=watermark)
                continue
            await wait_event(changed, heartbeat)
            if not self._after(cursor) and self.watermark is sent:
                yield BusBatch(watermark=sent)

    async def aclose(self) -> None:
        return None
