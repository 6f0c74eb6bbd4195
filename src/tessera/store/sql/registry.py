"""The verifier registry: what each verifier last reported applying, and when each
revocation event had been applied by every live verifier (logout completion).

``record`` is the writing half of a completion flush: one transaction. On SQLite in a
file the store runs it as one function on the ``sqlite3`` connection of its audit
writer, on the event loop (``record_sqlite``: the same statements, compiled once for
SQLite's named parameters), so the write lock is held for the statements, not for a
thread hop each."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from tessera.store.ports import Completion, VerifierReport
from tessera.store.sql.private_connection import sqlite_sql
from tessera.store.sql.repos_base import Repo as _Repo
from tessera.store.sql.schema import revocation_completions, verifier_reports

__all__ = ["SqlVerifierRegistry", "record_sqlite"]

_COMPLETION_LOCK = 7362819
_LOCK = text(f"SELECT pg_advisory_xact_lock({_COMPLETION_LOCK})")
_DONE = select(func.max(revocation_completions.c.seq))
_ADD = insert(revocation_completions)


def _upsert(dialect: Any) -> Any:
    stmt = dialect.insert(verifier_reports)
    return stmt.on_conflict_do_update(
        index_elements=["client_id", "verifier_id"],
        set_={"service": stmt.excluded.service, "cursor": stmt.excluded.cursor,
              "reported_at": stmt.excluded.reported_at, "lag": stmt.excluded.lag})


_REPORT = {"postgresql": _upsert(postgresql), "sqlite": _upsert(sqlite)}

_SQLITE_DONE, _SQLITE_REPORT, _SQLITE_ADD = (
    sqlite_sql(stmt) for stmt in (_DONE, _REPORT["sqlite"], _ADD))


def _report_row(r: VerifierReport) -> dict[str, Any]:
    return {"client_id": r.client_id, "verifier_id": r.verifier_id, "service": r.service,
            "cursor": r.cursor, "first_seen": r.first_seen, "reported_at": r.reported_at,
            "lag": r.lag}


def _completion_row(c: Completion) -> dict[str, Any]:
    return {"seq": c.seq, "at": c.at, "completed_at": c.completed_at,
            "verifiers": c.verifiers}


def _above(done: int | None, completions: Sequence[Completion]) -> list[Completion]:
    return [c for c in completions if done is None or c.seq > int(done)]


def record_sqlite(conn: sqlite3.Connection, reports: Sequence[VerifierReport],
                  completions: Sequence[Completion]) -> list[Completion]:
    """``SqlVerifierRegistry.record`` on a ``sqlite3`` connection inside a write
    transaction (``SqliteAuditWriter.transact``: on the event loop, so it only runs
    statements and never waits)."""
    done = conn.execute(_SQLITE_DONE).fetchone()
    if reports:
        conn.executemany(_SQLITE_REPORT, [_report_row(r) for r in reports])
    added = _above(done[0] if done else None, completions)
    if added:
        conn.executemany(_SQLITE_ADD, [_completion_row(c) for c in added])
    return added


def _report(row: RowMapping) -> VerifierReport:
    return VerifierReport(client_id=row["client_id"], verifier_id=row["verifier_id"],
                          service=row["service"], cursor=int(row["cursor"]),
                          reported_at=row["reported_at"], first_seen=row["first_seen"],
                          lag=row["lag"])


def _completion(row: RowMapping) -> Completion:
    return Completion(seq=int(row["seq"]), at=row["at"], completed_at=row["completed_at"],
                      verifiers=int(row["verifiers"]))


class SqlVerifierRegistry(_Repo):
    async def report(self, *reports: VerifierReport) -> None:
        if reports:
            await self.conn.execute(_REPORT[self.conn.dialect.name],
                                    [_report_row(r) for r in reports])

    async def verifiers(self) -> list[VerifierReport]:
        rows = await self.conn.execute(select(verifier_reports).order_by(
            verifier_reports.c.client_id, verifier_reports.c.verifier_id))
        return [_report(r) for r in rows.mappings()]

    async def completed_through(self) -> int | None:
        done = (await self.conn.execute(_DONE)).scalar()
        return None if done is None else int(done)

    async def add_completions(self, completions: Sequence[Completion]) -> None:
        if completions:
            await self.conn.execute(_ADD, [_completion_row(c) for c in completions])

    async def record(self, reports: Sequence[VerifierReport],
                     completions: Sequence[Completion]) -> list[Completion]:
        if self.conn.dialect.name == "postgresql":
            # One process at a time decides what is complete (SQLite writers are serial),
            # taken first: concurrent records queue before touching a row.
            await self.conn.execute(_LOCK)
        added = _above(await self.completed_through(), completions)
        await self.report(*reports)
        await self.add_completions(added)
        return added

    async def completions(self, seqs: Sequence[int]) -> dict[int, Completion]:
        if not seqs:
            return {}
        rows = await self.conn.execute(select(revocation_completions).where(
            revocation_completions.c.seq.in_(list(seqs))))
        return {int(r["seq"]): _completion(r) for r in rows.mappings()}

    async def prune(self, *, verifiers_before: float, completions_before: float) -> int:
        gone = await self.conn.execute(delete(verifier_reports).where(
            verifier_reports.c.reported_at < verifiers_before))
        newest = select(func.max(revocation_completions.c.seq)).scalar_subquery()
        old = await self.conn.execute(delete(revocation_completions).where(
            revocation_completions.c.completed_at < completions_before,
            revocation_completions.c.seq < newest))
        return int(gone.rowcount or 0) + int(old.rowcount or 0)
