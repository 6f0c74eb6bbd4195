"""The SQLite DBAPI the store's engine uses (``store/sql/sqlite_driver.py``): each
statement is one hop to the connection's thread, with the results, row counts, row ids
and errors SQLAlchemy's aiosqlite adapter gave."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from tessera.store.sql import SqlStore, create_store
from tests.hops import count_aiosqlite_hops


@pytest.fixture
async def scratch(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = create_store(f"sqlite:///{tmp_path / 'scratch.db'}")
    async with store.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield store
    await store.close()


async def test_a_statement_is_one_hop_to_the_connection_thread(
        scratch: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    async with scratch.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # the connection is open and set up
        hops = count_aiosqlite_hops(monkeypatch)
        rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
        assert rows == []
        assert len(hops) == 1  # was four: cursor, execute, fetchall, close


async def test_results_counts_and_row_ids(scratch: SqlStore) -> None:
    async with scratch.engine.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert inserted.lastrowid == 1
        assert inserted.rowcount == 1
        many = await conn.execute(text("INSERT INTO t (v) VALUES (:v)"),
                                  [{"v": "b"}, {"v": "c"}, {"v": "d"}])
        assert many.rowcount == 3
        returned = await conn.execute(text("INSERT INTO t (v) VALUES ('e') RETURNING id"))
        assert returned.scalar_one() == 5
        updated = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id > 2"))
        assert updated.rowcount == 3
        result = await conn.execute(text("SELECT id, v FROM t ORDER BY id"))
        assert list(result.keys()) == ["id", "v"]
        assert [tuple(r) for r in result] == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!"),
                                              (5, "e!")]
        streamed = await conn.stream(text("SELECT v FROM t ORDER BY id"))  # server side
        assert [r[0] async for r in streamed] == ["a", "b", "c!", "d!", "e!"]


async def test_driver_errors_reach_the_store_as_before(scratch: SqlStore) -> None:
    async with scratch.engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
        with pytest.raises(IntegrityError):
            await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
        with pytest.raises(OperationalError):
            await conn.execute(text("SELECT nope FROM t"))
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1


async def test_the_store_works_on_it(sqlite_store: SqlStore) -> None:
    """A unit of work end to end (write, read back, roll back on error)."""
    from tessera.core.revocation import RevocationEvent, RevocationKind

    async with sqlite_store.unit_of_work() as uow:
        seq = await uow.revocations.append(RevocationEvent(
            RevocationKind.TOKEN_REVOKED, "jti-1", at=1.0, expires_at=2e9))
    with pytest.raises(RuntimeError):
        async with sqlite_store.unit_of_work() as uow:
            await uow.revocations.append(RevocationEvent(
                RevocationKind.TOKEN_REVOKED, "jti-2", at=1.0, expires_at=2e9))
            raise RuntimeError("rolled back")
    async with sqlite_store.unit_of_work(read_only=True) as uow:
        assert [e.key for e in await uow.revocations.since(0, limit=10)] == ["jti-1"]
        assert await uow.revocations.last_seq() == seq
