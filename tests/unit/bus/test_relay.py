"""The outbox relay: committed events reach the bus, late but never lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tessera.bus import BusUnavailable, InProcessBus, OutboxRelay
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.store.sql import SqlStore


async def commit_events(store: SqlStore, *keys: str) -> None:
    async with store.unit_of_work() as uow:
        for key in keys:
            await uow.revocations.append(RevocationEvent(
                RevocationKind.TOKEN_REVOKED, key, at=1.0, expires_at=2e9))


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
        for _ in range(200):
            if await bus.last_seq() == 2:
                break
            await asyncio.sleep(0.01)
        assert await bus.last_seq() == 2
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
        for _ in range(100):
            if await bus.last_seq() == 1:
                break
            await asyncio.sleep(0.01)
        assert await bus.last_seq() == 1
    finally:
        await relay.aclose()
