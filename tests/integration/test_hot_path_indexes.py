"""The per-request reads that must not scan: SQLite's query plan for each names an index.
(A scan here grew with the table: every session per access-token revocation, every
observation of a family per refresh.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.dialects import sqlite

from tessera.store.sql.rotations import CompiledStatement, _read_statement
from tessera.store.sql.schema import metadata


def _plan(tmp_path: Path, sql: str, args: list[object]) -> str:
    """SQLite's query plan for ``sql`` on the schema, one line per step."""
    metadata.create_all(create_engine(f"sqlite:///{tmp_path / 'plan.db'}"))
    with sqlite3.connect(tmp_path / "plan.db") as db:
        rows = db.execute(f"EXPLAIN QUERY PLAN {sql}", args).fetchall()
    return "\n".join(str(row[-1]) for row in rows)


def test_ending_the_impersonations_of_a_token_reads_by_index(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "SELECT sid FROM sessions WHERE actor_jti = ? "
                           "AND revoked_at IS NULL", ["j"])
    assert "ix_sessions_actor_jti" in plan, plan


def test_the_refresh_read_finds_the_familys_newest_observations_by_index(
        tmp_path: Path) -> None:
    params = {"token_hash": "t", "recent_since": 0.0, "recent_limit": 20,
              "burst_since": 0.0, "mark_0": "m", "mark_since_0": 0.0}
    compiled = CompiledStatement(_read_statement(1, True), sqlite.dialect())
    plan = _plan(tmp_path, compiled.sql, compiled.args(params))
    assert "ix_risk_observations_family_kind" in plan, plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
