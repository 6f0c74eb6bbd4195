"""Group commit without a background task: concurrent callers share one write.

The first caller to find no batch in flight leads: it takes everything queued (its own
item included) and runs it as one batch — one statement, one transaction, one WAL flush
on PostgreSQL. Callers that arrive meanwhile queue; when the batch ends, the leader
hands the lead to the oldest of them and returns, so no caller waits for more than the
batch in flight and its own. There is no linger: the batch is what queued while the
previous one was committing, so an idle service pays nothing and a loaded one commits
many rotations per flush.

A failing batch fails each of its callers with the same exception; a cancelled leader
fails its batch with ``StoreError`` (the outcome is unknown: committed or not, which the
refresh grant's retry path is built for) and still hands the lead on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from tessera.store.ports import StoreError

__all__ = ["GroupCommit"]

T = TypeVar("T")
R = TypeVar("R")


class _Waiter(Generic[T, R]):
    __slots__ = ("error", "finished", "item", "lead", "result", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.wake = asyncio.Event()
        self.lead = False
        self.finished = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    def __init__(self, run: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *,
                 max_batch: int = 256) -> None:
        self._run = run
        self._max_batch = max_batch
        self._queue: list[_Waiter[T, R]] = []
        self._busy_loop: asyncio.AbstractEventLoop | None = None
        """The loop a batch is in flight on (None: no batch in flight)."""
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        """Run ``item`` in the next batch; its result (or the batch's exception)."""
        loop = asyncio.get_running_loop()
        waiter: _Waiter[T, R] = _Waiter(item)
        self._queue.append(waiter)
        if self._busy_loop is not loop:  # idle, or left busy by a loop that is gone
            self._busy_loop = loop
            self._queue = [waiter]  # (a gone loop's waiters are gone with it)
            waiter.lead = True
        try:
            while not waiter.finished:
                if waiter.lead:
                    waiter.lead = False
                    await self._lead()
                    continue
                await waiter.wake.wait()
                waiter.wake.clear()
        except asyncio.CancelledError:
            if waiter in self._queue:
                self._queue.remove(waiter)
            if waiter.lead:  # handed the lead, cancelled before taking it
                waiter.lead = False
                self._hand_on()
            raise
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]

    async def _lead(self) -> None:
        batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
        try:
            results = await self._run([w.item for w in batch])
        except asyncio.CancelledError:
            self._finish(batch, error=StoreError("the batch's outcome is unknown"))
            raise
        except BaseException as exc:
            self._finish(batch, error=exc)
        else:
            self.batches += 1
            self.items += len(batch)
            for waiter, result in zip(batch, results, strict=True):
                waiter.result = result
            self._finish(batch)
        finally:
            self._hand_on()

    @staticmethod
    def _finish(batch: list[_Waiter[T, R]], *, error: BaseException | None = None) -> None:
        for waiter in batch:
            waiter.error = error
            waiter.finished = True
            waiter.wake.set()

    def _hand_on(self) -> None:
        if self._queue:
            nxt = self._queue[0]
            nxt.lead = True
            nxt.wake.set()
        else:
            self._busy_loop = None
