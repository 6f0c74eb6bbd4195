"""``Store.append_outbox`` (``OutboxSink``): a transaction that only records audit events
and publishes revocation events commits both at once — on a SQLite file in one function
on the audit writer's connection, on the event loop — and hands its events off and wakes
the relays as a unit of work's commit does. ``application.transaction.appending`` is how
it is used."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest

from tessera.application import lifecycle
from tessera.application.transaction import appending
from tessera.core.audit_chain import find_breaks
from tessera.core.clock import SystemClock
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.observability.audit import AuditLog
from tessera.store.ports import AuditRecord, StoreConflict, StoreError
from tessera.store.sql import SqlStore
from tessera.store.sql.audit_writer import SqliteAuditWriter
from tests.hops import count_aiosqlite_hops


class Handoff:
    def __init__(self) -> None:
        self.committed_events: list[list[int | None]] = []
        self.stamps = 0

    def committing(self) -> float:
        self.stamps += 1
        return float(self.stamps)

    def committed(self, events: Sequence[RevocationEvent], before: float) -> None:
        self.committed_events.append([e.seq for e in events])


def _event(key: str) -> RevocationEvent:
    return RevocationEvent(RevocationKind.TOKEN_REVOKED, key, 1000.0, expires_at=2000.0,
                           data={"n": [1, 2.5]})


async def _audit_rows(store: SqlStore) -> list[Any]:
    async with store.unit_of_work(read_only=True) as uow:
        return [(r.id, r.record.event, r.record.at, r.record.fields, r.chain_hash)
                for r in await uow.audit.scan()]


async def test_audit_and_events_commit_together_and_are_handed_off(
        any_store: SqlStore) -> None:
    handoff, woken = Handoff(), []
    any_store.hand_off_outbox(handoff)
    any_store.on_outbox_commit(lambda: woken.append(1))
    async with any_store.unit_of_work() as uow:  # a unit of work before, on the same chain
        await uow.audit.append([AuditRecord("before", 1.0, {})])
        await uow.revocations.append(_event("jti-0"))
    appended = await any_store.append_outbox(
        [AuditRecord("token.revoked", 2.0, {"jti": "jti-1", "n": [1, 2.5]})],
        [_event("jti-1"), _event("jti-2")])
    first = handoff.committed_events[0][0]
    assert first is not None
    assert [e.seq for e in appended] == [first + 1, first + 2]
    assert [e.key for e in appended] == ["jti-1", "jti-2"]
    assert handoff.committed_events[1] == [e.seq for e in appended]
    assert len(woken) == 2
    async with any_store.unit_of_work(read_only=True) as uow:
        stored = await uow.revocations.since(first, limit=10)
    assert stored == appended  # the same values as written (data as JSON)
    rows = await _audit_rows(any_store)
    assert [r[1] for r in rows] == ["before", "token.revoked"]
    assert rows[1][3] == {"jti": "jti-1", "n": [1, 2.5]}
    assert find_breaks(rows)[0] == []
    assert await any_store.append_outbox([], []) == []


async def test_on_a_sqlite_file_it_commits_on_the_loop_off_the_engine(
        sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await sqlite_store.append_audit([AuditRecord("open", 1.0, {})])  # connection opened
    hops = count_aiosqlite_hops(monkeypatch)
    threads: list[Any] = []
    monkeypatch.setattr(asyncio, "to_thread", lambda *a, **k: threads.append(a))
    writes: list[int] = []
    write = SqliteAuditWriter.write

    async def one_write(self: SqliteAuditWriter, *args: Any, **kwargs: Any) -> list[int]:
        writes.append(1)
        return await write(self, *args, **kwargs)

    monkeypatch.setattr(SqliteAuditWriter, "write", one_write)
    appended = await sqlite_store.append_outbox([AuditRecord("x", 1.0, {})], [_event("j")])
    assert appended[0].seq is not None
    assert (hops, threads, writes) == ([], [], [1])
    assert appended[0].seq in sqlite_store._own_heads  # the change watch skips it


async def test_a_failed_commit_hands_nothing_off(
        sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    handoff = Handoff()
    sqlite_store.hand_off_outbox(handoff)
    before = list(sqlite_store._own_heads)
    original = SqliteAuditWriter.write

    async def fails_at_commit(self: SqliteAuditWriter, records: Any, events: Any = (), *,
                              before_commit: Any = None) -> list[int]:
        def then_fail(seqs: list[int]) -> None:
            before_commit(seqs)
            raise StoreError("database error: disk I/O")

        return await original(self, records, events, before_commit=then_fail)

    monkeypatch.setattr(SqliteAuditWriter, "write", fails_at_commit)
    with pytest.raises(StoreError):
        await sqlite_store.append_outbox([AuditRecord("x", 1.0, {})], [_event("j")])
    assert handoff.committed_events == []
    assert list(sqlite_store._own_heads) == before
    monkeypatch.setattr(SqliteAuditWriter, "write", original)
    async with sqlite_store.unit_of_work(read_only=True) as uow:
        assert await uow.revocations.since(0, limit=10) == []  # rolled back
        assert await uow.audit.scan() == []


class PlainStore:
    """A store with units of work only (no ``append_outbox``)."""

    def __init__(self, inner: SqlStore) -> None:
        self.unit_of_work = inner.unit_of_work


async def test_appending_reads_nothing_and_falls_back_to_a_unit_of_work(
        sqlite_store: SqlStore) -> None:
    audit = AuditLog(sqlite_store, SystemClock(), log_json=False)
    with pytest.raises(TypeError, match="reads nothing"):
        async with appending(sqlite_store, audit) as tx:
            await lifecycle.end_impersonations(tx, at=1.0, jti="j", reason="r",
                                               token_ttl=60)
    for store in (sqlite_store, PlainStore(sqlite_store)):
        async with appending(store, audit) as tx:  # type: ignore[arg-type]
            await lifecycle.revoke_access_token(tx, "jti-a", at=1.0, expires_at=2.0,
                                                client_id="c", token_digest="d")
    async with sqlite_store.unit_of_work(read_only=True) as uow:
        assert [e.key for e in await uow.revocations.since(0, limit=10)] == ["jti-a"] * 2
        assert [r.record.event for r in await uow.audit.scan()] == ["token.revoked"] * 2


def _hold_write_lock(database: str) -> sqlite3.Connection:
    """Another process's writer, as SQLite sees it: a connection holding the write
    lock."""
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_a_held_write_lock_is_waited_out_without_blocking_the_loop(
        sqlite_store: SqlStore) -> None:
    """Another writer holds SQLite's lock: the write retries after short sleeps (the
    busy handler is off: the loop never waits in SQLite), other work goes on meanwhile,
    and it commits once the lock is free."""
    writer = sqlite_store._audit_writer
    assert writer is not None
    other = _hold_write_lock(writer.database)
    try:
        call = asyncio.ensure_future(sqlite_store.append_outbox(
            [AuditRecord("x", 1.0, {})], [_event("j")]))
        ticks = 0
        for _ in range(20):  # the loop keeps turning while the write waits
            await asyncio.sleep(0.002)
            ticks += 1
        assert not call.done() and ticks == 20
    finally:
        other.execute("ROLLBACK")
        other.close()
    [appended] = await asyncio.wait_for(call, 5)
    assert appended.seq is not None and appended.seq in sqlite_store._own_heads


async def test_a_write_lock_held_past_the_busy_deadline_is_a_conflict(
        sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = sqlite_store._audit_writer
    assert writer is not None
    monkeypatch.setattr(writer, "_busy_deadline", 0.05)
    other = _hold_write_lock(writer.database)
    try:
        with pytest.raises(StoreConflict, match="database is locked"):
            await sqlite_store.append_audit([AuditRecord("x", 1.0, {})])
    finally:
        other.execute("ROLLBACK")
        other.close()
    await sqlite_store.append_audit([AuditRecord("y", 1.0, {})])  # the writer is fine
    assert [r[1] for r in await _audit_rows(sqlite_store)] == ["y"]


async def test_a_caller_cancelled_while_waiting_for_the_lock_writes_and_claims_nothing(
        sqlite_store: SqlStore) -> None:
    """The request went away (a client that disconnected) while its write waited for the
    lock: nothing awaits between ``BEGIN`` and ``COMMIT``, so nothing was written,
    nothing handed off, no head claimed — and the next write goes through."""
    handoff = Handoff()
    sqlite_store.hand_off_outbox(handoff)
    before = list(sqlite_store._own_heads)
    writer = sqlite_store._audit_writer
    assert writer is not None
    other = _hold_write_lock(writer.database)
    try:
        call = asyncio.ensure_future(sqlite_store.append_outbox([], [_event("j")]))
        await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert handoff.committed_events == []
    assert list(sqlite_store._own_heads) == before
    async with sqlite_store.unit_of_work(read_only=True) as uow:
        assert await uow.revocations.since(0, limit=10) == []
    [appended] = await sqlite_store.append_outbox([], [_event("k")])
    assert handoff.committed_events == [[appended.seq]]


async def test_loops_in_two_threads_never_interleave_transactions_on_the_connection(
        sqlite_store: SqlStore) -> None:
    """A store used from two threads' event loops (tests serving in a thread do): each
    transaction holds the connection's lock from ``BEGIN`` to its end, and a loop that
    finds it held sleeps and retries, so every row lands and the chain stays whole."""
    import threading

    writer = sqlite_store._audit_writer
    assert writer is not None
    errors: list[BaseException] = []

    def writing(name: str) -> None:
        async def main() -> None:
            for i in range(150):
                await writer.write([AuditRecord(name, float(i), {"i": i})])

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writing, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    await asyncio.to_thread(lambda: [t.join(30) for t in threads])
    assert errors == []
    rows = await _audit_rows(sqlite_store)
    assert sorted(r[1] for r in rows) == ["a"] * 150 + ["b"] * 150
    assert find_breaks(rows)[0] == []
