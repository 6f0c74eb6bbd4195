"""Audit rows are hash-chained on every store; edits and deletions are detected."""

from __future__ import annotations

from sqlalchemy import delete, update

from tessera.core.audit_chain import find_breaks
from tessera.store.ports import AuditRecord
from tessera.store.sql import SqlStore
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
