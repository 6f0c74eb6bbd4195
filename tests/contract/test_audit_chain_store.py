"""Audit rows are hash-chained on every store; edits and deletions are detected."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, update

from tessera.core.audit_chain import find_breaks
from tessera.store.ports import AuditRecord
from tessera.store.sql import SqlStore, create_store
from tessera.store.sql.schema import audit_events


async def rows(store: SqlStore) -> list[tuple[int, str, float, dict[str, object], str | None]]:
    async with store.unit_of_work(read_only=True) as uow:
        return [(r.id, r.record.event, r.record.at, r.record.fields, r.chain_hash)
                for r in await uow.audit.scan()]


async def write(store: SqlStore, *events: str) -> None:
    async with store.unit_of_work() as uow:
        await uow.audit.append([AuditRecord(e, 1000.5, {"who": e, "n": [1, 2.5]})
                                for e in events])


async def test_the_chain_spans_transactions_and_survives_a_round_trip(
        any_store: SqlStore) -> None:
    await write(any_store, "a", "b")
    await write(any_store, "c")
    stored = await rows(any_store)
    assert [r[1] for r in stored] == ["a", "b", "c"]
    assert all(r[4] for r in stored)
    assert find_breaks(stored)[0] == []


async def test_edits_and_deletions_are_detected(any_store: SqlStore) -> None:
    await write(any_store, "a", "b", "c", "d")
    async with any_store.engine.begin() as conn:
        await conn.execute(update(audit_events).where(audit_events.c.event == "b")
                           .values(fields={"who": "mallory"}))
    breaks, _ = find_breaks(await rows(any_store))
    assert len(breaks) == 1
    async with any_store.engine.begin() as conn:
        await conn.execute(delete(audit_events).where(audit_events.c.event == "c"))
    breaks, _ = find_breaks(await rows(any_store))
    assert len(breaks) == 2


async def test_the_group_commit_path_extends_the_same_chain(any_store: SqlStore) -> None:
    """``append_audit`` (the audit log's batches: on SQLite its own connection, on the
    event loop) and the unit of work's ``audit.append`` write one chain between them,
    with the same stored values."""
    await write(any_store, "a")
    await any_store.append_audit([AuditRecord("b", 1000.5, {"who": "b", "n": [1, 2.5]}),
                                  AuditRecord("c", 1001.0, {"who": "c", "nested": {"x": None}})])
    await write(any_store, "d")
    await any_store.append_audit([])
    stored = await rows(any_store)
    assert [r[1] for r in stored] == ["a", "b", "c", "d"]
    assert stored[1][3] == {"who": "b", "n": [1, 2.5]}
    assert stored[2][3] == {"who": "c", "nested": {"x": None}}
    assert find_breaks(stored)[0] == []


async def test_concurrent_batches_of_two_stores_keep_one_chain(
        any_store: SqlStore, request: pytest.FixtureRequest) -> None:
    """Two processes' audit writers (here: two stores on one database) interleave
    without forking the chain: each batch reads the head under the write lock."""
    schema = (request.getfixturevalue("postgres_schema")
              if any_store.engine.dialect.name == "postgresql" else None)
    other = create_store(any_store.engine.url.render_as_string(hide_password=False),
                         schema=schema)
    try:
        await asyncio.gather(*(
            store.append_audit([AuditRecord(f"{name}{n}", float(n), {"n": n})
                                for n in range(k, k + 3)])
            for k in range(0, 30, 3) for name, store in (("x", any_store), ("y", other))))
    finally:
        await other.close()
    stored = await rows(any_store)
    assert len(stored) == 60
    assert find_breaks(stored)[0] == []
