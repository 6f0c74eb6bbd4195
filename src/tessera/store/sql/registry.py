"""The verifier registry: what each verifier last reported applying, and when each
revocation event had been applied by every live verifier (logout completion)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from tessera.store.ports import Completion, VerifierReport
from tessera.store.sql.repos_base import Repo as _Repo
from tessera.store.sql.schema import revocation_completions, verifier_reports

__all__ = ["SqlVerifierRegistry"]

_COMPLETION_LOCK = 7362819


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
        if not reports:
            return
        dialect: Any = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(verifier_reports)
        await self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["client_id", "verifier_id"],
            set_={"service": stmt.excluded.service, "cursor": stmt.excluded.cursor,
                  "reported_at": stmt.excluded.reported_at, "lag": stmt.excluded.lag}), [
            {"client_id": r.client_id, "verifier_id": r.verifier_id, "service": r.service,
             "cursor": r.cursor, "first_seen": r.first_seen, "reported_at": r.reported_at,
             "lag": r.lag} for r in reports])

    async def verifiers(self) -> list[VerifierReport]:
        rows = await self.conn.execute(select(verifier_reports).order_by(
            verifier_reports.c.client_id, verifier_reports.c.verifier_id))
        return [_report(r) for r in rows.mappings()]

    async def completed_through(self) -> int | None:
        if self.conn.dialect.name == "postgresql":
            # One process at a time decides what is complete (SQLite writers are serial).
            await self.conn.execute(text(f"SELECT pg_advisory_xact_lock({_COMPLETION_LOCK})"))
        done = (await self.conn.execute(select(func.max(revocation_completions.c.seq))))\
            .scalar()
        return None if done is None else int(done)

    async def add_completions(self, completions: Sequence[Completion]) -> None:
        if completions:
            await self.conn.execute(insert(revocation_completions), [
                {"seq": c.seq, "at": c.at, "completed_at": c.completed_at,
                 "verifiers": c.verifiers} for c in completions])

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
