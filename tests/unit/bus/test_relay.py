"""The outbox relay: committed events reach the bus, late but never lost."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from tessera.bus import BusRewound, BusUnavailable, InProcessBus, OutboxBatch
from tessera.bus.relay import OutboxRelay
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.store.sql import SqlStore
from tests.polling import eventually


async def commit_events(store: SqlStore, *keys: str) -> None:
    async with store.unit_of_work() as uow:
        for key in keys:
            await uow.revocations.append(RevocationEvent(
                RevocationKind.TOKEN_REVOKED, key, at=1.0, expires_at=2e9))


async def _at(bus: InProcessBus, seq: int) -> bool:
    return await bus.last_seq() == seq


async def test_events_committed_while_no_relay_ran_are_published_on_start(
        sqlite_store: SqlStore) -> None:
    await commit_events(sqlite_store, "a", "b")  # the relay "crashed" before publishing
    bus = InProcessBus()
    relay = OutboxRelay(sqlite_store, bus)
    assert await relay.relay_once() == 2
    assert await relay.relay_once() == 0
    assert await bus.last_seq() == 2


async def test_a_new_relay_resumes_where_the_bus_stands(sqlite_store: SqlStore) -> None:
    bus = InProcessBus()
    await commit_events(sqlite_store, "a")
    await OutboxRelay(sqlite_store, bus).relay_once()
    await commit_events(sqlite_store, "b", "c")
    second = OutboxRelay(sqlite_store, bus)  # e.g. after a restart
    assert await second.relay_once() == 2
    assert await bus.last_seq() == 3


class FlakyBus(InProcessBus):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def publish(self, events: Sequence[RevocationEvent]) -> int:
        if self.down:
            raise BusUnavailable("down")
        return await super().publish(events)


async def test_a_bus_outage_delays_events_and_the_running_relay_catches_up(
        sqlite_store: SqlStore) -> None:
    bus = FlakyBus()
    relay = OutboxRelay(sqlite_store, bus, poll_interval=0.01, retry_delay=0.01)
    sqlite_store.on_outbox_commit(relay.notify)
    relay.start()
    try:
        await commit_events(sqlite_store, "a", "b")
        await asyncio.sleep(0.05)
        assert await bus.last_seq() == 0
        bus.down = False
        await eventually(lambda: _at(bus, 2), what="relay caught up")
    finally:
        await relay.aclose()


async def test_a_commit_wakes_the_relay_without_waiting_for_the_poll(
        sqlite_store: SqlStore) -> None:
    bus = InProcessBus()
    relay = OutboxRelay(sqlite_store, bus, poll_interval=30)
    sqlite_store.on_outbox_commit(relay.notify)
    relay.start()
    try:
        await asyncio.sleep(0.05)
        await commit_events(sqlite_store, "a")
        await eventually(lambda: _at(bus, 1), timeout=1, what="woken relay published")
    finally:
        await relay.aclose()


async def test_an_idle_relay_marks_a_watermark_read_before_the_outbox(
        sqlite_store: SqlStore) -> None:
    clock = FixedClock(1000.0)
    bus = InProcessBus()
    relay = OutboxRelay(sqlite_store, bus, clock=clock, heartbeat=1.0, batch=2)
    await commit_events(sqlite_store, "a", "b")
    assert await relay.relay_once() == 2
    assert bus.watermark is None, "a full batch may be partial: no watermark with it"
    assert not relay.drained
    assert await relay.relay_once() == 0
    assert bus.watermark is not None
    assert (bus.watermark.head, bus.watermark.at, bus.watermark.epoch) == (2, 1000.0,
                                                                          bus.epoch)
    clock.advance(0.5)
    await relay.relay_once()
    assert bus.watermark.at == 1000.0, "not due yet: once per heartbeat when idle"
    clock.advance(0.5)
    await relay.relay_once()
    assert bus.watermark.at == 1001.0
    await commit_events(sqlite_store, "c")
    clock.advance(0.1)
    assert await relay.relay_once() == 1
    assert relay.drained
    assert (bus.watermark.head, bus.watermark.at) == (3, 1001.1), "with the events it moved"
    clock.advance(0.1)
    assert await relay.relay_once() == 0
    assert bus.watermark.at == 1001.1, "already marked with the batch"


async def test_a_batch_read_to_the_end_wakes_followers_once_with_its_watermark(
        sqlite_store: SqlStore) -> None:
    bus = InProcessBus()
    relay = OutboxRelay(sqlite_store, bus, clock=FixedClock(1000.0))
    await commit_events(sqlite_store, "a", "b")
    follow = bus.follow(0, heartbeat=5)
    assert await relay.relay_once() == 2
    first = await anext(follow)
    assert [e.seq for e in first] == [1, 2]
    assert first.watermark is not None and (first.watermark.head, first.watermark.at) == (
        2, 1000.0), "the events and the watermark they prove arrive together"
    await follow.aclose()  # type: ignore[attr-defined]


class RewoundOnce(InProcessBus):
    """Refuses the first publish as a bus that lost content would (``BusRewound``)."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def publish(self, events: Sequence[RevocationEvent]) -> int:
        if not self.refused:
            self.refused += 1
            raise BusRewound("lost")
        return await super().publish(events)


async def test_a_rewound_bus_is_republished_at_once_without_pausing(
        sqlite_store: SqlStore) -> None:
    bus = RewoundOnce()
    relay = OutboxRelay(sqlite_store, bus, poll_interval=30, retry_delay=30)
    await commit_events(sqlite_store, "a", "b")
    relay.start()
    try:
        await eventually(lambda: _at(bus, 2), what="republished")
        assert bus.refused == 1
    finally:
        await relay.aclose()


class Recording(InProcessBus):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[OutboxBatch] = []

    async def publish(self, events: Sequence[RevocationEvent]) -> int:
        assert isinstance(events, OutboxBatch)
        self.batches.append(events)
        return await super().publish(events)


async def test_the_relay_stamps_when_a_commit_woke_it_and_when_it_read_the_batch(
        sqlite_store: SqlStore) -> None:
    """The stage split of propagation (issue 15): the first notify since the last read
    stamps the wake-up (a local commit's end), the read its own time; a read nothing
    woke (a poll) carries no wake-up stamp."""
    clock = FixedClock(1000.0)
    bus = Recording()
    relay = OutboxRelay(sqlite_store, bus, clock=clock)
    await commit_events(sqlite_store, "a")
    relay.notify()
    clock.advance(0.5)
    relay.notify()  # a second commit before the read: the first wake-up counts
    clock.advance(0.25)
    assert await relay.relay_once() == 1
    assert (bus.batches[0].woken_at, bus.batches[0].read_at) == (1000.0, 1000.75)
    await commit_events(sqlite_store, "b")
    clock.advance(1)
    assert await relay.relay_once() == 1  # woken by its poll: no notify since the read
    assert (bus.batches[1].woken_at, bus.batches[1].read_at) == (None, 1001.75)


class Bug(InProcessBus):
    """``publish`` raises what no adapter maps (a bug, an unmapped driver error) while
    ``failing`` is above zero (negative: forever); records each attempt's time."""

    def __init__(self, failing: int) -> None:
        super().__init__()
        self.failing = failing
        self.attempts: list[float] = []
        self.positions_read = 0
        self.positions_read_at_attempt: list[int] = []

    async def last_seq(self) -> int:
        self.positions_read += 1
        return await super().last_seq()

    async def publish(self, events: Sequence[RevocationEvent]) -> int:
        self.attempts.append(asyncio.get_running_loop().time())
        self.positions_read_at_attempt.append(self.positions_read)
        if self.failing:
            self.failing -= 1
            raise RuntimeError("unexpected driver error")
        return await super().publish(events)


def _failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tessera.bus" and r.levelno >= logging.ERROR]


async def test_an_unexpected_error_is_logged_counted_and_the_relay_goes_on(
        sqlite_store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    bus = Bug(failing=1)
    errors: list[str] = []
    relay = OutboxRelay(sqlite_store, bus, poll_interval=30, retry_delay=0.01,
                        on_error=errors.append)
    sqlite_store.on_outbox_commit(relay.notify)
    await commit_events(sqlite_store, "a", "b")
    with caplog.at_level(logging.ERROR, logger="tessera.bus"):
        relay.start()
        try:
            await eventually(lambda: _at(bus, 2), what="published after the failure")
            await commit_events(sqlite_store, "c")  # and it still follows new commits
            await eventually(lambda: _at(bus, 3), what="later commits published")
        finally:
            await relay.aclose()
    assert len(bus.attempts) == 3
    assert errors == ["unexpected"]
    first, second = bus.positions_read_at_attempt[:2]
    assert second > first, "the cursor was reset: the bus position read again"
    [record] = _failures(caplog)
    assert "RuntimeError" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


async def test_a_persistent_error_backs_off_exponentially_up_to_a_cap(
        sqlite_store: SqlStore, caplog: pytest.LogCaptureFixture) -> None:
    retry = 0.01
    bus = Bug(failing=-1)
    relay = OutboxRelay(sqlite_store, bus, poll_interval=0.001, retry_delay=retry)
    sqlite_store.on_outbox_commit(relay.notify)
    await commit_events(sqlite_store, "a")
    with caplog.at_level(logging.ERROR, logger="tessera.bus"):
        relay.start()
        try:
            await eventually(lambda: len(bus.attempts) >= 7, what="seven attempts")
            window_start = asyncio.get_running_loop().time()
            for _ in range(50):  # commits (notify) do not cut a backoff short
                relay.notify()
                await asyncio.sleep(0.01)
            in_window = [t for t in bus.attempts if t >= window_start]
        finally:
            await relay.aclose()
    expected = [retry * min(2 ** n, 10) for n in range(7)]  # 0.01 … 0.08, then 0.1 capped
    announced = [getattr(r, "retry_in", None) for r in _failures(caplog)[:7]]
    assert announced == pytest.approx(expected)
    gaps = [b - a for a, b in itertools.pairwise(bus.attempts[:7])]
    assert all(gap >= want * 0.9 for gap, want in zip(gaps, expected, strict=False)), gaps
    # 0.1 s apart by now: about 5 attempts in >= 0.5 s (50 if notify cut the backoff short
    # or without one, thousands spinning)
    assert len(in_window) <= 12, in_window


async def test_cancel_ends_the_relay_even_while_it_backs_off_or_awaits_the_bus(
        sqlite_store: SqlStore) -> None:
    bus = Bug(failing=-1)
    relay = OutboxRelay(sqlite_store, bus, retry_delay=30)
    await commit_events(sqlite_store, "a")
    relay.start()
    await eventually(lambda: bus.attempts, what="first attempt")
    await asyncio.sleep(0.01)
    task = relay._task
    assert task is not None and not task.done(), "the relay survives the failure"
    await asyncio.wait_for(relay.aclose(), 2)
    assert task.done()

    class Stuck(InProcessBus):
        async def publish(self, events: Sequence[RevocationEvent]) -> int:
            self.entered = True
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    stuck = Stuck()
    relay = OutboxRelay(sqlite_store, stuck)
    relay.start()
    await eventually(lambda: getattr(stuck, "entered", False), what="publish entered")
    task = relay._task
    await asyncio.wait_for(relay.aclose(), 2)  # CancelledError is not caught as a failure
    assert task is not None and task.cancelled()


class CountingReads:
    """Counts the relay's outbox reads (read-only units of work) on a real store."""

    def __init__(self, store: SqlStore) -> None:
        self.reads = 0
        self._store = store

    def unit_of_work(self, *, read_only: bool = False):  # type: ignore[no-untyped-def]
        self.reads += read_only
        return self._store.unit_of_work(read_only=read_only)


async def test_this_processs_commits_are_handed_over_and_published_without_a_read(
        sqlite_store: SqlStore) -> None:
    clock = FixedClock(1000.0)
    bus = InProcessBus()
    reads = CountingReads(sqlite_store)
    relay = OutboxRelay(reads, bus, clock=clock)  # type: ignore[arg-type]
    assert await relay.relay_once() == 0  # the bus's position; an idle read
    reads.reads = 0
    sqlite_store.hand_off_outbox(relay)
    await commit_events(sqlite_store, "a", "b")  # stamped before its commit: 1000.0
    clock.advance(5)
    assert await relay.relay_once() == 2
    assert reads.reads == 0, "handed over: not read back from the outbox"
    assert await bus.last_seq() == 2 and relay.drained
    assert bus.watermark is not None and (bus.watermark.head, bus.watermark.at) == (
        2, 1000.0), "proven up to the moment before the commit, not the publish"


async def test_a_handed_commit_after_a_gap_is_read_from_the_outbox_in_order(
        sqlite_store: SqlStore) -> None:
    """Another process's commit (here: one this relay was not handed) sits between the
    bus and a handed commit: the relay reads the outbox rather than skip it."""
    bus = InProcessBus()
    relay = OutboxRelay(sqlite_store, bus, clock=FixedClock(1000.0))
    await commit_events(sqlite_store, "other-process")  # not handed over
    sqlite_store.hand_off_outbox(relay)
    await commit_events(sqlite_store, "mine")
    assert await relay.relay_once() == 2
    follow = bus.follow(0, heartbeat=5)
    assert [e.key for e in await anext(follow)] == ["other-process", "mine"]
    await follow.aclose()  # type: ignore[attr-defined]


async def test_a_failed_commit_hands_nothing_over(sqlite_store: SqlStore) -> None:
    bus = InProcessBus()
    relay = OutboxRelay(sqlite_store, bus, clock=FixedClock(1000.0))
    sqlite_store.hand_off_outbox(relay)
    with pytest.raises(RuntimeError):
        async with sqlite_store.unit_of_work() as uow:
            await uow.revocations.append(RevocationEvent(
                RevocationKind.TOKEN_REVOKED, "rolled-back", at=1.0, expires_at=2e9))
            raise RuntimeError("the transaction fails")
    assert await relay.relay_once() == 0 and await bus.last_seq() == 0, "nothing to publish"


class CountingMarks(InProcessBus):
    def __init__(self) -> None:
        super().__init__()
        self.marks: list[float] = []

    async def mark(self, head: int, at: float) -> Any:
        self.marks.append(at)
        return await super().mark(head, at)


async def test_under_steady_traffic_a_watermark_is_also_written_apart_once_per_heartbeat(
        sqlite_store: SqlStore) -> None:
    """A follower of an older release reads no watermark on an entry; a relay that is
    never idle still writes one on its own every ``heartbeat``."""
    clock = FixedClock(1000.0)
    bus = CountingMarks()
    relay = OutboxRelay(sqlite_store, bus, clock=clock, heartbeat=1.0)
    for _ in range(8):  # a revocation every 0.3 s: never an idle read
        await commit_events(sqlite_store, "k")
        assert await relay.relay_once() == 1
        clock.advance(0.3)
    assert [round(m, 6) for m in bus.marks] == [1000.0, 1001.2]


@pytest.mark.parametrize("path", ["appending", "transaction"])
async def test_after_a_commit_of_revocation_events_the_relay_publishes_before_the_caller_goes_on(
        sqlite_store: SqlStore, path: str) -> None:
    """Issue 15: the commit hands the events to this process's relay, and the caller
    yields once before answering, so the publish is on its way before the answer (and
    the audit lines) are written; a transaction without revocation events does not
    yield for it."""
    from tessera.application.transaction import appending, transaction
    from tessera.core.clock import SystemClock
    from tessera.observability.audit import AuditLog

    bus = Recording()
    relay = OutboxRelay(sqlite_store, bus)
    sqlite_store.hand_off_outbox(relay)
    relay.start()
    try:
        await eventually(lambda: relay.drained, what="the relay idle")
        audit = AuditLog(sqlite_store, SystemClock(), log_json=False)
        funnel = appending if path == "appending" else transaction
        async with funnel(sqlite_store, audit) as tx:
            tx.audit("token.revoked", jti="j1")
            tx.publish(RevocationEvent(RevocationKind.TOKEN_REVOKED, "j1", at=1.0,
                                       expires_at=2e9))
        assert [[e.key for e in batch] for batch in bus.batches] == [["j1"]]
    finally:
        await relay.aclose()


async def test_a_wake_up_whose_commit_a_pass_already_carried_is_not_left_to_date_the_next(
        sqlite_store: SqlStore) -> None:
    """A commit that notifies while a pass is under way (its events caught by that pass's
    outbox read) must not leave its wake-up stamp for the next batch: that stamp would
    predate the next commit (the stage split showed recorded → relay woken negative)."""
    clock = FixedClock(1000.0)
    relay: OutboxRelay

    class NotifiedMidPass(Recording):
        async def publish(self, events: Sequence[RevocationEvent]) -> int:
            if not self.batches:  # the commit of what this pass read notifies only now
                clock.advance(1)
                relay.notify()
            return await super().publish(events)

    bus = NotifiedMidPass()
    relay = OutboxRelay(sqlite_store, bus, clock=clock)
    await commit_events(sqlite_store, "a")
    assert await relay.relay_once() == 1
    clock.advance(1)
    await commit_events(sqlite_store, "b")
    relay.notify()  # b's own commit, at 1002
    assert await relay.relay_once() == 1
    assert [batch.woken_at for batch in bus.batches] == [None, 1002.0]


async def test_a_commit_handed_over_during_an_outbox_read_that_carried_it_is_dropped(
        sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit handed over while a pass reads the outbox, and caught by that read, went
    out with it: the pass is drained (its handed copy dropped, so no second read at once
    — one that would again be in flight when the next commit comes) and the commit's
    wake-up stamp does not date the next batch."""
    import contextlib

    clock = FixedClock(1000.0)
    bus = Recording()
    relay = OutboxRelay(sqlite_store, bus, clock=clock)
    await commit_events(sqlite_store, "other", "own")
    async with sqlite_store.unit_of_work(read_only=True) as uow:
        own = [e for e in await uow.revocations.since(0, limit=10) if e.key == "own"]
    real = sqlite_store.unit_of_work

    @contextlib.asynccontextmanager
    async def reading(*, read_only: bool = False) -> Any:
        async with real(read_only=read_only) as uow:
            if read_only and own:  # the commit's hand-off lands while the read runs
                relay.committed([own.pop()], clock.now())
            yield uow

    monkeypatch.setattr(sqlite_store, "unit_of_work", reading)
    assert await relay.relay_once() == 2
    assert relay.drained and not relay._handed
    assert not relay._wake.is_set(), "only that commit woke it: the relay may idle"
    clock.advance(1)
    await commit_events(sqlite_store, "next")
    relay.notify()  # the next commit's own wake-up, at 1001
    assert await relay.relay_once() == 1
    assert [batch.woken_at for batch in bus.batches] == [None, 1001.0]

    # another process's commit noticed during a pass keeps the relay awake
    await commit_events(sqlite_store, "mine")
    async with real(read_only=True) as uow:
        own.extend(e for e in await uow.revocations.since(3, limit=10))
    original = reading

    @contextlib.asynccontextmanager
    async def reading_and_watch(*, read_only: bool = False) -> Any:
        async with original(read_only=read_only) as uow:
            relay.notify()  # the outbox watch saw another process's commit
            yield uow

    monkeypatch.setattr(sqlite_store, "unit_of_work", reading_and_watch)
    assert await relay.relay_once() == 1
    assert relay._wake.is_set()


async def test_another_process_commit_that_woke_the_relay_is_read_after_the_handed_ones(
        sqlite_store: SqlStore) -> None:
    """Woken by the outbox watch (another process's commit) with this process's commit
    handed over too: the handed one goes out first, and the pass does not count as
    drained, so the next one reads the outbox at once instead of at the heartbeat."""
    bus = Recording()
    relay = OutboxRelay(sqlite_store, bus)
    assert await relay.relay_once() == 0
    sqlite_store.hand_off_outbox(relay)
    await commit_events(sqlite_store, "own")  # handed over
    sqlite_store._handoffs.remove(relay)
    await commit_events(sqlite_store, "other")  # as another process's: not handed
    relay.notify()  # the outbox watch saw it
    assert await relay.step() is True  # published "own"; run again at once
    assert await relay.step() is False
    assert [[e.key for e in batch] for batch in bus.batches] == [["own"], ["other"]]
