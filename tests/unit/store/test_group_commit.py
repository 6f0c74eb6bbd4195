"""GroupCommit: concurrent callers share batches, each gets its own result, failures and
cancellations reach exactly the callers of the batch, and the lead always moves on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tessera.store.ports import StoreError
from tessera.store.sql.group_commit import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_on: int | None = None
        self.hold_on: int | None = None
        """A batch with this item waits until cancelled."""

    async def run(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.hold_on in items:
            await asyncio.Event().wait()
        await asyncio.sleep(0)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"batch with {self.fail_on}")
        return [i * 10 for i in items]


async def test_a_lone_caller_runs_its_own_batch_at_once() -> None:
    rec = Recorder()
    group = GroupCommit(rec.run)
    assert await group.submit(1) == 10
    assert await group.submit(2) == 20
    assert rec.batches == [[1], [2]]


async def test_callers_arriving_during_a_batch_share_the_next_one() -> None:
    rec = Recorder()
    group = GroupCommit(rec.run)
    rec.gate.clear()
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)  # 1 leads and waits at the gate
    rest = [asyncio.ensure_future(group.submit(i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await first == 10
    assert [await r for r in rest] == [20, 30, 40, 50, 60]
    assert rec.batches == [[1], [2, 3, 4, 5, 6]]
    assert (group.batches, group.items) == (2, 6)


async def test_max_batch_splits_a_long_queue() -> None:
    rec = Recorder()
    group = GroupCommit(rec.run, max_batch=2)
    rec.gate.clear()
    calls = [asyncio.ensure_future(group.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert [await c for c in calls] == [10, 20, 30, 40, 50]
    assert rec.batches == [[1], [2, 3], [4, 5]]


async def test_a_failing_batch_fails_its_callers_only() -> None:
    rec = Recorder()
    group = GroupCommit(rec.run)
    rec.gate.clear()
    rec.fail_on = 3
    first = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)
    second = [asyncio.ensure_future(group.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    rec.gate.set()
    assert await first == 10
    for call in second:
        with pytest.raises(ValueError, match="batch with 3"):
            await call
    rec.fail_on = None
    assert await group.submit(4) == 40  # the lead was handed on: not stuck


async def test_a_cancelled_leader_fails_its_batch_as_unknown_and_hands_the_lead_on() -> None:
    rec = Recorder()
    group = GroupCommit(rec.run)
    rec.gate.clear()
    leader = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)
    follower = asyncio.ensure_future(group.submit(2))
    await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    rec.gate.set()
    assert await follower == 20  # led the next batch
    assert rec.batches == [[1], [2]]


async def test_a_cancelled_waiter_leaves_the_queue_and_the_rest_proceed() -> None:
    rec = Recorder()
    group = GroupCommit(rec.run)
    rec.gate.clear()
    leader = asyncio.ensure_future(group.submit(1))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(group.submit(2))
    stays = asyncio.ensure_future(group.submit(3))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    rec.gate.set()
    assert await leader == 10
    assert await stays == 30
    assert gone.cancelled()
    assert rec.batches == [[1], [3]]


async def test_the_batch_of_a_cancelled_leader_is_a_store_error_for_the_others() -> None:
    rec = Recorder()
    group = GroupCommit(rec.run)
    rec.gate.clear()
    rec.hold_on = 5
    first = asyncio.ensure_future(group.submit(0))
    await asyncio.sleep(0)
    calls = [asyncio.ensure_future(group.submit(i)) for i in (5, 6)]
    await asyncio.sleep(0)
    rec.gate.set()  # 0's batch ends; 5 leads the batch of 5 and 6, which hangs
    assert await first == 0
    for _ in range(5):
        await asyncio.sleep(0)
    assert rec.batches == [[0], [5, 6]]
    calls[0].cancel()  # its outcome, and so 6's, is unknown
    with pytest.raises(asyncio.CancelledError):
        await calls[0]
    with pytest.raises(StoreError, match="unknown"):
        await calls[1]
    rec.hold_on = None
    assert await group.submit(7) == 70
