"""The per-request reads that must not scan: SQLite's query plan for each names an index.
(A scan here grew with the table: every session per access-token revocation, every
observation of a family per refresh.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.dialects import sqlite

from tessera.store.sql.rotations import CompiledStatement, _read_statement
from tessera.store.sql.schema import metadata


def _plan(tmp_path: Path, sql: str, params: dict[str, object]) -> str:
    engine = create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    metadata.create_all(engine)
    with engine.connect() as conn:
        rows = conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"), params).all()
    return "\n".join(str(row[-1]) for row in rows)


def test_ending_the_impersonations_of_a_token_reads_by_index(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "SELECT sid FROM sessions WHERE actor_jti = :jti "
                           "AND revoked_at IS NULL", {"jti": "j"})
    assert "ix_sessions_actor_jti" in plan, plan


def test_the_refresh_read_finds_the_familys_newest_observations_by_index(
        tmp_path: Path) -> None:
    params = {"token_hash": "t", "recent_since": 0.0, "recent_limit": 20,
              "burst_since": 0.0, "mark_0": "m", "mark_since_0": 0.0}
    compiled = CompiledStatement(_read_statement(1, True), sqlite.dialect())
    _plan(tmp_path, "SELECT 1", {})  # the schema
    with sqlite3.connect(tmp_path / "plan.db") as db:
        rows = db.execute(f"EXPLAIN QUERY PLAN {compiled.sql}",
                          compiled.args(params)).fetchall()
    plan = "\n".join(str(row[-1]) for row in rows)
    assert "ix_risk_observations_family_kind" in plan, plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
