"""The outbox relay: committed events reach the bus, late but never lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

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
    await follow.aclose()


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
