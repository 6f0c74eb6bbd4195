"""The outbox relay: committed revocation rows → one bus, in order, at least once.

It resumes from the bus's own ``last_seq``, so a relay that crashed between commit and
publish (or a bus that was down) catches up when it runs again: events are delayed, never
dropped. Publishing is idempotent by seq, so several relays (one per worker process) may
feed the same bus. One relay per bus: an outage of one bus never holds up another.
``notify()`` wakes it at once after a local commit; a short poll picks up commits made by
other processes (the CLI, other workers).

The bus's position is also read on every idle poll, not only after an error: a bus that
lost its content while the relay was idle (Redis restarted empty between two polls)
reports a ``last_seq`` below the relay's cursor, and the relay republishes from there, so
followers that had not read those events yet still get them. Each batch is an ``OutboxBatch``
naming the seq of the event before it, so a follower can tell a lost event from a
skipped seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tessera.bus.ports import BusUnavailable, EventBus, OutboxBatch
from tessera.store.ports import Store, StoreError

__all__ = ["OutboxRelay"]

_log = logging.getLogger("tessera.bus")


class OutboxRelay:
    def __init__(self, store: Store, bus: EventBus, *, poll_interval: float = 0.1,
                 batch: int = 500, retry_delay: float = 0.5) -> None:
        self._store = store
        self._bus = bus
        self._poll = poll_interval
        self._batch = batch
        self._retry = retry_delay
        self._wake = asyncio.Event()
        self._cursor: int | None = None
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        while True:
            try:
                moved = await self.relay_once()
            except (StoreError, BusUnavailable) as exc:
                _log.warning("outbox relay paused: %s", exc)
                self._cursor = None  # re-read the bus's position when it is back
                await asyncio.sleep(self._retry)
                continue
            if not moved:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                self._wake.clear()

    async def relay_once(self) -> int:
        """Publish the next batch the bus lacks; returns how many events were moved."""
        if self._cursor is None:
            self._cursor = await self._bus.last_seq()
        async with self._store.unit_of_work(read_only=True) as uow:
            events = await uow.revocations.since(self._cursor, limit=self._batch)
        if not events:
            # Idle: check the bus still holds what we published (it may have restarted
            # empty). Not on the hot path: a publish into an emptied stream is caught by
            # followers anyway (the entry names its predecessor → snapshot).
            top = await self._bus.last_seq()
            if top < self._cursor:
                _log.warning("bus position went back from %d to %d (restarted empty?); "
                             "republishing from the outbox", self._cursor, top)
                self._cursor = top
                return await self.relay_once()
            return 0
        await self._bus.publish(OutboxBatch(events, after=self._cursor))
        self._cursor = events[-1].seq
        return len(events)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
