"""The verifier registry on every store: reports, logout completion, pruning."""

from __future__ import annotations

import asyncio

from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.store.ports import VerifierReport
from tessera.store.sql import SqlStore

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


async def test_completion_follows_the_lowest_live_cursor_once_per_event(
        any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("a", 0, T))
        await uow.verifiers.report(report("b", 0, T))
    first, second = await commit(any_store, T + 1, T + 2)
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("a", second, T + 3))
        assert await uow.verifiers.complete(live_since=T - 10, at=T + 3) == []
        await uow.verifiers.report(report("b", first, T + 4))
        done = await uow.verifiers.complete(live_since=T - 10, at=T + 4)
    assert [(c.seq, c.completed_at, c.verifiers, c.seconds) for c in done] == [
        (first, T + 4, 2, 3.0)]
    async with any_store.unit_of_work() as uow:  # b stops reporting: not live any more
        await uow.verifiers.report(report("a", second, T + 10))
        done = await uow.verifiers.complete(live_since=T + 3.5, at=T + 10)
        assert done == []  # b reported at T + 4: still live, still at the first event
        done = await uow.verifiers.complete(live_since=T + 5, at=T + 20)
        assert [(c.seq, c.verifiers) for c in done] == [(second, 1)]
        assert await uow.verifiers.complete(live_since=T + 5, at=T + 21) == []
    async with any_store.unit_of_work(read_only=True) as uow:
        stored = await uow.verifiers.completions([first, second, 999])
    assert sorted(stored) == [first, second]


async def test_no_live_verifier_completes_nothing_and_older_events_are_skipped(
        any_store: SqlStore) -> None:
    old, = await commit(any_store, T - 100)
    async with any_store.unit_of_work() as uow:
        assert await uow.verifiers.complete(live_since=T, at=T) == []
        await uow.verifiers.report(report("late", old, T))  # first seen after the event
    new, = await commit(any_store, T + 1)
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("late", new, T + 2))
        done = await uow.verifiers.complete(live_since=T, at=T + 2)
    assert [c.seq for c in done] == [new], "an event older than every verifier is no fact"


async def test_concurrent_completions_record_each_event_once(any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("a", 0, T))
    seqs = await commit(any_store, *(T + i for i in range(1, 6)))
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("a", seqs[-1], T + 10))

    async def complete() -> list[int]:
        async with any_store.unit_of_work() as uow:
            return [c.seq for c in await uow.verifiers.complete(live_since=T, at=T + 10)]

    results = await asyncio.gather(*(complete() for _ in range(4)))
    assert sorted(seq for done in results for seq in done) == seqs


async def test_prune_forgets_silent_verifiers_and_old_completions_but_the_newest(
        any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("old", 0, T))
        await uow.verifiers.report(report("new", 0, T + 50))
    seqs = await commit(any_store, T + 51, T + 52)
    async with any_store.unit_of_work() as uow:
        await uow.verifiers.report(report("new", seqs[-1], T + 60))
        assert len(await uow.verifiers.complete(live_since=T + 40, at=T + 60)) == 2
    async with any_store.unit_of_work() as uow:
        assert await uow.verifiers.prune(verifiers_before=T + 10,
                                         completions_before=T + 100) == 2
    async with any_store.unit_of_work(read_only=True) as uow:
        assert [v.verifier_id for v in await uow.verifiers.verifiers()] == ["new"]
        assert sorted(await uow.verifiers.completions(seqs)) == [seqs[-1]]
