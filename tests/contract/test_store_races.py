"""Race guarantees of the store contract: of concurrent callers of a conditional verb
exactly one wins, and the revocation outbox becomes visible in sequence order.

Each contender runs in its own unit of work (its own connection). Where the store lets
write transactions overlap (PostgreSQL), every contender first reads the row and waits
at a barrier, so all of them act on the same stale read; SQLite serialises writers at
``BEGIN IMMEDIATE``, so there the contenders queue and the later ones see the winner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from sqlalchemy import text

from tessera.store.ports import SealedKey, Store, StoreConflict, StoreError, UnitOfWork
from tessera.store.sql import SqlStore
from tests.contract.conftest import NOW, Graph, a_code, a_family, an_event, seed, uid

T = TypeVar("T")
N = 8

Contender = Callable[[UnitOfWork, Callable[[], Awaitable[None]]], Awaitable[T]]


def writers_overlap(store: Store) -> bool:
    return isinstance(store, SqlStore) and store.engine.dialect.name != "sqlite"


async def race(store: Store, contender: Contender[T], n: int = N) -> list[T]:
    """Run ``contender(uow, reads_done)`` in ``n`` concurrent units of work."""
    barrier = asyncio.Barrier(n) if writers_overlap(store) else None

    async def reads_done() -> None:
        if barrier is not None:
            await asyncio.wait_for(barrier.wait(), 10)

    async def one() -> T:
        async with store.unit_of_work() as uow:
            return await contender(uow, reads_done)

    return await asyncio.gather(*(one() for _ in range(n)))


async def test_exactly_one_concurrent_rotate_wins(any_store: Store, graph: Graph) -> None:
    digest = graph.token.token_hash

    async def rotate(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]
                     ) -> tuple[str, bool]:
        await uow.refresh.get_token(digest)
        await reads_done()
        successor = uid("succ")
        return successor, await uow.refresh.rotate(digest, successor_hash=successor, at=NOW)

    results = await race(any_store, rotate)
    winners = [successor for successor, won in results if won]
    assert len(winners) == 1
    async with any_store.unit_of_work(read_only=True) as uow:
        token = await uow.refresh.get_token(digest)
        assert token is not None and token.successor_hash == winners[0]


async def test_exactly_one_concurrent_consume_is_the_first_use(any_store: Store,
                                                                graph: Graph) -> None:
    code = a_code(graph.session)
    async with any_store.unit_of_work() as uow:
        await uow.codes.add(code)

    async def consume(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> bool:
        await reads_done()
        result = await uow.codes.consume(code.code_hash, at=NOW)
        assert result is not None and result[0].code_hash == code.code_hash
        return result[1]

    assert sorted(await race(any_store, consume)) == [False] * (N - 1) + [True]


async def test_exactly_one_concurrent_revoke_wins(any_store: Store, graph: Graph) -> None:
    async def revoke(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]
                     ) -> tuple[bool, bool]:
        await uow.sessions.get(graph.session.sid)
        await reads_done()
        return (await uow.refresh.revoke_family(graph.family.family_id, at=NOW, reason="r"),
                await uow.sessions.revoke(graph.session.sid, at=NOW, reason="r"))

    results = await race(any_store, revoke)
    assert sum(family for family, _ in results) == 1
    assert sum(session for _, session in results) == 1


async def test_concurrent_version_bumps_each_return_a_distinct_new_version(
        any_store: Store, graph: Graph) -> None:
    async def bump(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> int | None:
        await uow.sessions.get(graph.session.sid)
        await reads_done()
        return await uow.sessions.bump_version(graph.session.sid)

    assert sorted(await race(any_store, bump)) == list(range(2, N + 2))  # type: ignore[type-var]
    async with any_store.unit_of_work(read_only=True) as uow:
        session = await uow.sessions.get(graph.session.sid)
        assert session is not None and session.sv == N + 1


async def test_concurrent_appends_get_distinct_sequence_numbers(any_store: Store) -> None:
    async with any_store.unit_of_work(read_only=True) as uow:
        start = await uow.revocations.last_seq()

    async def append(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]
                     ) -> list[int]:
        await reads_done()
        return [await uow.revocations.append(an_event()) for _ in range(3)]

    seqs = [seq for batch in await race(any_store, append) for seq in batch]
    assert len(set(seqs)) == 3 * N and min(seqs) > start
    async with any_store.unit_of_work(read_only=True) as uow:
        assert [e.seq for e in await uow.revocations.since(start, limit=100)] == sorted(seqs)


async def test_a_reader_never_sees_a_later_sequence_before_an_earlier_one_commits(
        any_store: Store) -> None:
    """A follower resumes from its cursor (DESIGN §3): if ``since(c)`` could return
    seq n+1 while n is still uncommitted, the follower would skip n for ever."""
    async with any_store.unit_of_work(read_only=True) as uow:
        start = await uow.revocations.last_seq()
    first_appended, release_first = asyncio.Event(), asyncio.Event()

    async def slow() -> int:
        async with any_store.unit_of_work() as uow:
            seq = await uow.revocations.append(an_event("slow"))
            first_appended.set()
            await release_first.wait()
        return seq

    async def fast() -> int:
        async with any_store.unit_of_work() as uow:
            return await uow.revocations.append(an_event("fast"))

    slow_task = asyncio.create_task(slow())
    await first_appended.wait()
    fast_task = asyncio.create_task(fast())
    await asyncio.sleep(0.3)  # let the fast writer commit, if the store allows it to
    async with any_store.unit_of_work(read_only=True) as uow:
        seen_early = await uow.revocations.since(start, limit=10)
    release_first.set()
    slow_seq, fast_seq = await asyncio.gather(slow_task, fast_task)
    assert seen_early == []
    assert slow_seq < fast_seq
    async with any_store.unit_of_work(read_only=True) as uow:
        assert [e.key for e in await uow.revocations.since(start, limit=10)] == [
            "slow", "fast"]


async def test_read_modify_writes_of_the_key_ring_run_one_after_the_other(
        any_store: Store) -> None:
    """Workers starting at once each bootstrap the ring only if it is empty (KeyManager);
    exactly one may create it. Plain readers are not held up meanwhile."""
    reading = asyncio.Event()

    async def bootstrap() -> bool:
        async with any_store.unit_of_work() as uow:
            if await uow.keys.all():
                return False
            reading.set()
            await asyncio.sleep(0.1)  # widen the window between the read and the write
            await uow.keys.add(SealedKey(kid=uid("kid"), alg="RS256", state="active",
                                         sealed_private="s", created_at=NOW, changed_at=NOW))
            return True

    async def read_meanwhile() -> list[SealedKey]:
        await reading.wait()
        async with any_store.unit_of_work(read_only=True) as uow:
            return await asyncio.wait_for(uow.keys.all(), 1)

    *created, seen = await asyncio.gather(*(bootstrap() for _ in range(4)), read_meanwhile())
    assert sorted(created) == [False, False, False, True]
    assert seen == []
    async with any_store.unit_of_work(read_only=True) as uow:
        assert len(await uow.keys.all()) == 1


@pytest.mark.postgres
async def test_a_connection_lost_inside_a_unit_of_work_is_a_store_error(
        postgres_store: SqlStore) -> None:
    async with postgres_store.engine.connect() as admin:
        with pytest.raises(StoreError):
            async with postgres_store.unit_of_work() as uow:
                conn = uow.keys.conn  # type: ignore[attr-defined]  # adapter internals
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await admin.commit()
                await uow.keys.all()
    async with postgres_store.unit_of_work(read_only=True) as uow:  # the pool recovers
        assert await uow.keys.all() == []


@pytest.fixture
async def graph_pg(postgres_store: SqlStore) -> Graph:
    return await seed(postgres_store)


@pytest.mark.postgres
async def test_a_deadlock_is_a_store_conflict_and_the_other_side_commits(
        postgres_store: SqlStore, graph_pg: Graph) -> None:
    """Appends serialise until commit, so a unit of work that appends and then locks a
    row can deadlock with one that holds that row and then appends (revoke a session's
    families vs. reuse detection on one of them). The database aborts one; it must
    surface as the retryable ``StoreConflict``, and the other must commit."""
    other = a_family(graph_pg.session)
    async with postgres_store.unit_of_work() as uow:
        await uow.refresh.add_family(other)
    first_published = asyncio.Event()

    async def revoke_session_families() -> None:
        async with postgres_store.unit_of_work() as uow:
            await uow.refresh.revoke_family(graph_pg.family.family_id, at=NOW, reason="logout")
            await uow.revocations.append(an_event(graph_pg.family.family_id))
            first_published.set()
            await asyncio.sleep(0.2)
            await uow.refresh.revoke_family(other.family_id, at=NOW, reason="logout")

    async def reuse_detected() -> None:
        async with postgres_store.unit_of_work() as uow:
            await uow.refresh.revoke_family(other.family_id, at=NOW, reason="reuse")
            await first_published.wait()
            await uow.revocations.append(an_event(other.family_id))

    outcomes = await asyncio.gather(revoke_session_families(), reuse_detected(),
                                    return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], StoreConflict), outcomes
    session_side_won = outcomes[0] is None
    async with postgres_store.unit_of_work(read_only=True) as uow:
        first = await uow.refresh.get_family(graph_pg.family.family_id)
        second = await uow.refresh.get_family(other.family_id)
    assert first is not None and second is not None
    if session_side_won:
        assert (first.revoke_reason, second.revoke_reason) == ("logout", "logout")
    else:
        assert (first.revoke_reason, second.revoke_reason) == (None, "reuse")
