"""SQLite's WAL checkpoints run beside the commits (``store.sql.checkpoint``): every
connection of the store checkpoints by itself only past the backstop, and a serving
process's checkpointer moves what was committed into the database file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.identity.compose import Identity
from tessera.store.ports import AuditRecord
from tessera.store.sql import SqlStore
from tessera.store.sql.checkpoint import WAL_BACKSTOP_PAGES, checkpoint_wal
from tests.support import eventually


def _events_in_file_alone(database: str, copy: Path) -> int:
    """Revocation events in the database file without its WAL (a copy of the file)."""
    shutil.copy(database, copy)
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM revocation_events").fetchone()[0])
    finally:
        conn.close()


async def _commit(store: SqlStore, n: int) -> None:
    await store.append_outbox([AuditRecord("token.revoked", 1.0, {})], [
        RevocationEvent(RevocationKind.TOKEN_REVOKED, f"jti-{i}", 1.0, expires_at=2.0)
        for i in range(n)])
    async with store.unit_of_work() as uow:  # and a unit of work (the engine's pool)
        await uow.revocations.append(RevocationEvent(
            RevocationKind.TOKEN_REVOKED, "jti-uow", 1.0, expires_at=2.0))


async def test_every_connection_checkpoints_only_past_the_backstop(
        sqlite_store: SqlStore, tmp_path: Path) -> None:
    async with sqlite_store.engine.connect() as conn:
        pages = (await conn.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar()
    assert pages == WAL_BACKSTOP_PAGES
    await _commit(sqlite_store, 3)
    writer = sqlite_store._audit_writer
    assert writer is not None
    assert writer._open().execute("PRAGMA wal_autocheckpoint").fetchone()[0] \
        == WAL_BACKSTOP_PAGES
    # no checkpointer ran: the commits are in the WAL only
    assert _events_in_file_alone(writer.database, tmp_path / "copy.db") == 0


async def test_the_checkpointer_moves_commits_into_the_database_file(
        sqlite_store: SqlStore, tmp_path: Path) -> None:
    await _commit(sqlite_store, 3)
    writer = sqlite_store._audit_writer
    assert writer is not None
    task = asyncio.get_running_loop().create_task(sqlite_store.checkpoint_wal(interval=0.01))
    try:
        async def checkpointed() -> bool:
            return _events_in_file_alone(writer.database, tmp_path / "copy.db") == 4

        await eventually(checkpointed)
        await _commit(sqlite_store, 1)  # commits go on beside it

        async def again() -> bool:
            return _events_in_file_alone(writer.database, tmp_path / "copy.db") == 6

        await eventually(again)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_failing_checkpoint_is_logged_once_and_retried(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = str(tmp_path / "gone" / "tessera.db")  # cannot be opened
    with caplog.at_level(logging.INFO, logger="tessera.store"):
        task = asyncio.get_running_loop().create_task(
            checkpoint_wal(missing, interval=0.005))
        await asyncio.sleep(0.1)
        assert not task.done()  # still retrying
        (tmp_path / "gone").mkdir()

        async def recovered() -> bool:
            return any("works again" in r.getMessage() for r in caplog.records)

        await eventually(recovered)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    failures = [r for r in caplog.records if "WAL checkpoint failed" in r.getMessage()]
    assert len(failures) == 1
    assert "OperationalError" in failures[0].getMessage()


async def test_the_service_runs_the_checkpointer_with_its_relays(identity: Identity
                                                                  ) -> None:
    identity.start_relays()
    checkpointer = identity.checkpointer
    assert checkpointer is not None and not checkpointer.done()
    await identity.stop_relays()
    assert checkpointer.done() and identity.checkpointer is None
