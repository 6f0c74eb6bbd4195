"""Event-driven outbox relay (issue 15 item 5): a commit in another process (here: another
store with its own pool, as the CLI or another worker) wakes the relay — through
LISTEN/NOTIFY on PostgreSQL, a watch on the database files on SQLite — so it is
published long before the relay's poll would find it."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tessera.bus import InProcessBus
from tessera.bus.relay import OutboxRelay
from tessera.core.signals import SignalEvent
from tessera.store.ports import AuditRecord
from tessera.store.sql import SqlStore, create_store
from tests.conftest import POSTGRES_URL
from tests.unit.bus.test_relay import commit_events


async def until(condition: asyncio.Event, timeout: float = 5.0) -> None:
    await asyncio.wait_for(condition.wait(), timeout)


async def published(bus: InProcessBus, seq: int) -> None:
    async for batch in bus.follow(seq - 1):
        if batch:
            return


@pytest.mark.postgres
async def test_another_process_commit_wakes_the_relay(postgres_store: SqlStore,
                                                      postgres_schema: str) -> None:
    assert postgres_store.outbox_channel == f"tessera_outbox_{postgres_schema}"[:63]
    assert POSTGRES_URL
    other = create_store(POSTGRES_URL, schema=postgres_schema)
    bus = InProcessBus()
    relay = OutboxRelay(postgres_store, bus, poll_interval=5, heartbeat=30)
    listening = asyncio.Event()

    def connected(on: bool) -> None:
        relay.set_event_driven(on)
        if on:
            listening.set()

    listener = asyncio.get_running_loop().create_task(
        postgres_store.listen_outbox(relay.notify, connected=connected))
    relay.start()
    try:
        await until(listening)
        assert relay.event_driven
        for n in range(3):
            loop = asyncio.get_running_loop()
            started = loop.time()
            await commit_events(other, f"jti-{n}")  # no listener of ours on `other`
            await asyncio.wait_for(published(bus, n + 1), 5.0)
            assert loop.time() - started < 2.0  # the 5 s poll did not do it
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await relay.aclose()
        await other.close()
    assert not relay.event_driven  # listening stopped: back to polling


async def test_sqlite_has_no_channel_and_listen_returns(sqlite_store: SqlStore) -> None:
    assert sqlite_store.outbox_channel is None
    await asyncio.wait_for(sqlite_store.listen_outbox(lambda: None), 1.0)


async def _watching(store: SqlStore, woken: asyncio.Event, states: list[bool], *,
                    interval: float = 0.005) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(
        store.watch_outbox(woken.set, connected=states.append, interval=interval))
    await asyncio.sleep(0)  # baseline taken, up to the first sleep
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_sqlite_file_watch_wakes_on_another_process_commit(
        sqlite_store: SqlStore) -> None:
    other = create_store(str(sqlite_store.engine.url))
    woken = asyncio.Event()
    watch = await _watching(sqlite_store, woken, [])
    try:
        assert not woken.is_set()
        await commit_events(other, "jti-x")
        await until(woken, timeout=2.0)
    finally:
        await _stop(watch)
        await other.close()


async def test_sqlite_file_watch_ignores_commits_outside_the_outbox(
        sqlite_store: SqlStore) -> None:
    """The audit log's group commits (every token request) change the files too; they
    must not wake every relay and the fan-out into their own reads. A signal event (the
    fan-out's other outbox table) still wakes."""
    other = create_store(str(sqlite_store.engine.url))
    woken = asyncio.Event()
    watch = await _watching(sqlite_store, woken, [])
    try:
        for n in range(5):
            async with other.unit_of_work() as uow:
                await uow.audit.append([AuditRecord("token.issued", at=float(n), fields={})])
            await asyncio.sleep(0.02)  # several ticks of the watch see the change
        assert not woken.is_set()
        async with other.unit_of_work() as uow:
            await uow.signals.record(SignalEvent("credential-change", None, "u-1", at=1.0))
        await until(woken, timeout=2.0)
        woken.clear()
        await commit_events(other, "jti-y")
        await until(woken, timeout=2.0)
    finally:
        await _stop(watch)
        await other.close()


async def test_sqlite_watch_leaves_this_process_own_commit_to_its_hand_off(
        sqlite_store: SqlStore) -> None:
    """Its own commit woke its relays and fan-out already (``hand_off_outbox``,
    ``on_outbox_commit``): the watch waking them again cost every revocation a second
    read of the outbox per relay. Another process's commit still wakes, and the watch
    reports itself working (the relays then poll only at their heartbeat) until it
    ends."""
    other = create_store(str(sqlite_store.engine.url))
    woken, states = asyncio.Event(), []
    watch = await _watching(sqlite_store, woken, states)
    try:
        assert states == [True]
        for n in range(3):
            await commit_events(sqlite_store, f"own-{n}")
            await asyncio.sleep(0.03)
        assert not woken.is_set()
        await commit_events(other, "theirs")
        await until(woken, timeout=2.0)
    finally:
        await _stop(watch)
        await other.close()
    assert states == [True, False]


async def test_the_watch_knows_an_own_commit_after_the_next_has_claimed_its_seq(
        sqlite_store: SqlStore) -> None:
    """The watch reads heads every few ms; between this process's commit of seq N and
    its reading of it, the next revocation may already have claimed N+1 (set before its
    commit). N is still this process's: no wake-up (it cost the relays an outbox read
    racing the hand-off, a few ms of a revocation's path). Revocations committed in one
    step (``append_outbox``, the writer's own connection) count as own alike."""
    from tessera.core.revocation import RevocationEvent, RevocationKind

    woken = asyncio.Event()
    watch = await _watching(sqlite_store, woken, [], interval=0.05)
    try:
        await commit_events(sqlite_store, "own-1")
        [own] = await sqlite_store.append_outbox(
            [], [RevocationEvent(RevocationKind.TOKEN_REVOKED, "own-2", 1.0, expires_at=2.0)])
        assert own.seq is not None
        sqlite_store._own_heads.append(own.seq + 1)  # the next one, mid-commit
        await asyncio.sleep(0.15)  # the watch has read the heads since
        assert not woken.is_set()
    finally:
        await _stop(watch)


async def test_another_process_commit_just_before_this_one_is_still_published(
        sqlite_store: SqlStore) -> None:
    """Both seen in one look, the head is this process's: the watch stays quiet, and the
    relay, handed this process's event, finds the gap before it and reads the other
    one from the outbox — long before its poll or heartbeat would."""
    other = create_store(str(sqlite_store.engine.url))
    bus = InProcessBus()
    relay = OutboxRelay(sqlite_store, bus, poll_interval=30, heartbeat=30)
    sqlite_store.hand_off_outbox(relay)
    woken, states = asyncio.Event(), []
    watch = await _watching(sqlite_store, woken, states, interval=0.5)
    relay.set_event_driven(True)
    relay.start()
    try:
        await asyncio.sleep(0.05)  # the relay's first pass: nothing yet
        await commit_events(other, "theirs")
        await commit_events(sqlite_store, "own")
        assert await asyncio.wait_for(_keys(bus, 2), 2.0) == ["theirs", "own"]
    finally:
        await relay.aclose()
        await _stop(watch)
        await other.close()


async def _keys(bus: InProcessBus, count: int) -> list[str]:
    keys: list[str] = []
    async for batch in bus.follow(0):
        keys += [event.key for event in batch]
        if len(keys) >= count:
            return keys
    return keys


async def test_sqlite_watch_that_cannot_read_wakes_once_and_reports_it(
        sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing read (a locked or vanished file) must not hide a commit: the listener is
    woken, the relays are told to poll, and a working read later says so again."""
    from tessera.store.sql import engine

    failing = {"on": False}
    query = engine._OutboxHeads._query

    def flaky(self: engine._OutboxHeads, sql: str) -> object:
        return None if failing["on"] else query(self, sql)

    monkeypatch.setattr(engine._OutboxHeads, "_query", flaky)
    woken, states = asyncio.Event(), []
    watch = await _watching(sqlite_store, woken, states)
    try:
        failing["on"] = True
        await until(woken, timeout=2.0)
        woken.clear()
        await asyncio.sleep(0.05)  # still failing: no wake-up per look
        assert not woken.is_set()
        assert states == [True, False]
        failing["on"] = False
        await until(woken, timeout=2.0)  # working again: whatever it missed, look
        await asyncio.sleep(0.02)
        assert states == [True, False, True]
    finally:
        await _stop(watch)
