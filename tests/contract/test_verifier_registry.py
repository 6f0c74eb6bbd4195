"""The verifier registry on every store: reports, logout completion, pruning."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.identity.completion import LogoutCompletion
from tessera.observability.metrics import IdentityMetrics
from tessera.store.ports import Completion, StoreError, VerifierReport
from tessera.store.sql import SqlStore
from tests.hops import count_aiosqlite_hops

T = 1_800_000_000.0


def report(verifier_id: str, cursor: int, at: float, *, client_id: str = "feed"
           ) -> VerifierReport:
    return VerifierReport(client_id=client_id, verifier_id=verifier_id, service="orders",
                          cursor=cursor, reported_at=at, first_seen=at, lag=0.5)


async def commit(store: SqlStore, *ats: float) -> list[int]:
    seqs = []
    async with store.unit_of_work() as uow:
        for at in ats:
            seqs.append(await uow.revocations.append(RevocationEvent(
                RevocationKind.SESSION_REVOKED, f"sid-{at}", at=at, expires_at=at + 600)))
    return seqs


async def test_a_report_updates_its_verifier_and_keeps_when_it_was_first_seen(
        any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("v1", 0, T))
        await uow.verifiers.report(report("v1", 0, T, client_id="other"))
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("v1", 7, T + 5))
    async with any_store.unit_of_work(read_only=True) as uow:
        known = await uow.verifiers.verifiers()
    assert [(v.client_id, v.verifier_id, v.cursor, v.first_seen, v.reported_at)
            for v in known] == [("feed", "v1", 7, T, T + 5), ("other", "v1", 0, T, T)]


async def test_reports_in_one_call_are_recorded_together(any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("a", 0, T))
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("a", 3, T + 1), report("b", 2, T + 1))
        await uow.verifiers.report()  # nothing: no statement
    async with any_store.unit_of_work(read_only=True) as uow:
        known = await uow.verifiers.verifiers()
    assert [(v.verifier_id, v.cursor, v.first_seen) for v in known] == [
        ("a", 3, T), ("b", 2, T + 1)]


async def test_completions_are_recorded_once_and_found_by_seq(any_store: SqlStore) -> None:
    first, second = await commit(any_store, T + 1, T + 2)
    async with any_store.unit_of_work() as uow:
        assert await uow.verifiers.completed_through() is None
        await uow.verifiers.add_completions([
            Completion(seq=first, at=T + 1, completed_at=T + 4, verifiers=2)])
        await uow.verifiers.add_completions([])
    async with any_store.unit_of_work() as uow:
        assert await uow.verifiers.completed_through() == first
    async with any_store.unit_of_work(read_only=True) as uow:
        stored = await uow.verifiers.completions([first, second, 999])
    assert list(stored) == [first]
    assert (stored[first].seconds, stored[first].verifiers) == (3.0, 2)


async def test_last_before_names_the_newest_event_older_than_a_moment(
        any_store: SqlStore) -> None:
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.revocations.last_before(T) == 0
    old, new = await commit(any_store, T - 100, T + 1)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.revocations.last_before(T) == old
        assert await uow.revocations.last_before(T + 1) == old  # strictly before
        assert await uow.revocations.last_before(T + 2) == new


async def test_concurrent_completion_decisions_record_each_event_once(
        any_store: SqlStore) -> None:
    """``record`` serialises deciders (an advisory lock on PostgreSQL, the one writer on
    SQLite): four flushes of the same reports add each event once."""
    store = any_store
    seqs = await commit(store, *(T + i for i in range(1, 6)))
    async with store.unit_of_work() as uow:
        await uow.verifiers.report(report("a", 0, T))
    completion = LogoutCompletion(store, FixedClock(T + 10),
                                  IdentityMetrics(), live_seconds=30)

    await asyncio.gather(*(completion.report("feed", "a", "orders", seqs[-1], 0.0)
                           for _ in range(4)))
    async with store.unit_of_work(read_only=True) as uow:
        stored = await uow.verifiers.completions(seqs)
    assert sorted(stored) == seqs


async def test_record_adds_only_completions_above_those_recorded(any_store: SqlStore
                                                                  ) -> None:
    """A flush decides from a read before its write; ``record`` (one transaction, on
    every path) drops what another process recorded meanwhile, and returns the rest."""
    seqs = await commit(any_store, T + 1, T + 2, T + 3)
    done = [Completion(seq=s, at=T + i, completed_at=T + 9, verifiers=1)
            for i, s in enumerate(seqs, start=1)]
    async with any_store.unit_of_work() as uow:  # another process got to the first
        assert await uow.verifiers.record([report("a", seqs[0], T)], done[:1]) == done[:1]
    mine = [dataclasses.replace(c, verifiers=2) for c in done]
    added = await any_store.record_reports([report("a", seqs[2], T + 5),
                                            report("b", seqs[2], T + 5)], mine)
    assert added == mine[1:]
    assert await any_store.record_reports([], mine) == []
    async with any_store.unit_of_work(read_only=True) as uow:
        stored = await uow.verifiers.completions(seqs)
        known = await uow.verifiers.verifiers()
    assert stored == {seqs[0]: done[0], seqs[1]: mine[1], seqs[2]: mine[2]}
    assert [(v.verifier_id, v.cursor, v.first_seen, v.reported_at, v.lag)
            for v in known] == [("a", seqs[2], T, T + 5, 0.5), ("b", seqs[2], T + 5,
                                                                T + 5, 0.5)]


async def test_on_a_sqlite_file_a_flush_writes_in_one_thread_hop(
        sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    seq, = await commit(sqlite_store, T + 1)
    hops = count_aiosqlite_hops(monkeypatch)
    added = await sqlite_store.record_reports(
        [report("a", seq, T + 2)], [Completion(seq=seq, at=T + 1, completed_at=T + 2,
                                               verifiers=1)])
    assert hops == [] and [c.seq for c in added] == [seq]


async def test_a_failed_record_writes_nothing(any_store: SqlStore) -> None:
    seq, = await commit(any_store, T + 1)
    twice = [Completion(seq=seq, at=T + 1, completed_at=T + 2, verifiers=1)] * 2
    with pytest.raises(StoreError):
        await any_store.record_reports([report("a", seq, T + 2)], twice)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.verifiers.verifiers() == []  # rolled back with it
        assert await uow.verifiers.completions([seq]) == {}


async def test_a_flush_completes_by_the_lowest_live_cursor_and_skips_older_events(
        any_store: SqlStore) -> None:
    old, = await commit(any_store, T - 100)
    clock = FixedClock(T)
    completion = LogoutCompletion(any_store, clock, IdentityMetrics(),
                                  live_seconds=10)
    assert await completion.flush() == []
    await completion.report("feed", "late", "orders", old, 0.0)  # first seen after it
    first, second = await commit(any_store, T + 1, T + 2)
    clock.advance(3)
    await completion.report("feed", "b", "orders", 0, 0.0)
    clock.advance(1)
    await completion.report("feed", "late", "orders", second, 0.0)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.verifiers.completions([old, first, second]) == {}  # b is at 0
    clock.advance(1)
    await completion.report("feed", "b", "orders", first, 0.0)
    clock.advance(15)  # "late" stopped reporting at T + 4: not live any more
    await completion.report("feed", "b", "orders", second, 0.0)
    async with any_store.unit_of_work(read_only=True) as uow:
        stored = await uow.verifiers.completions([old, first, second])
    assert sorted(stored) == [first, second], "an event older than every verifier is no fact"
    assert (stored[first].completed_at, stored[first].verifiers) == (T + 5, 2)
    assert (stored[second].completed_at, stored[second].verifiers) == (T + 20, 1)


async def test_prune_forgets_silent_verifiers_and_old_completions_but_the_newest(
        any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("old", 0, T))
        await uow.verifiers.report(report("new", 0, T + 50))
    seqs = await commit(any_store, T + 51, T + 52)
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("new", seqs[-1], T + 60))
        await uow.verifiers.add_completions([
            Completion(seq=s, at=T + 51, completed_at=T + 60, verifiers=1) for s in seqs])
    async with any_store.unit_of_work() as uow:
        assert await uow.verifiers.prune(verifiers_before=T + 10,
                                         completions_before=T + 100) == 2
    async with any_store.unit_of_work(read_only=True) as uow:
        assert [v.verifier_id for v in await uow.verifiers.verifiers()] == ["new"]
        assert sorted(await uow.verifiers.completions(seqs)) == [seqs[-1]]
