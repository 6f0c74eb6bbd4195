"""Alembic migrations are the source of truth for the live schema; ``schema.metadata``
must match what they build, on SQLite and on PostgreSQL, and re-running is a no-op."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from tessera.store import migrations
from tessera.store.migrations import upgrade_database
from tessera.store.sql import create_store
from tessera.store.sql.schema import metadata
from tests.conftest import POSTGRES_URL, require_service

HEAD = ScriptDirectory(str(Path(migrations.__file__).parent)).get_current_head()


def _snapshot(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    return {
        "diff": compare_metadata(MigrationContext.configure(conn), metadata),
        "revision": MigrationContext.configure(conn).get_current_heads(),
        "tables": {name: (sorted(c["name"] for c in inspector.get_columns(name)),
                          sorted(str(i["name"]) for i in inspector.get_indexes(name)))
                   for name in inspector.get_table_names()},
    }


def snapshot(url: str, schema: str | None = None) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        store = create_store(url, schema=schema)
        try:
            async with store.engine.connect() as conn:
                return await conn.run_sync(_snapshot)
        finally:
            await store.close()

    return asyncio.run(read())


def assert_at_head_matching_metadata(state: dict[str, Any]) -> None:
    assert state["diff"] == []
    assert state["revision"] == (HEAD,)
    assert set(state["tables"]) == set(metadata.tables) | {"alembic_version"}


def test_sqlite_upgrade_builds_the_metadata_schema_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade_database(url)
    first = snapshot(url)
    assert_at_head_matching_metadata(first)
    upgrade_database(url)
    assert snapshot(url) == first


@pytest.fixture
def fresh_pg_schema() -> Iterator[str]:
    url = require_service(POSTGRES_URL, "postgres")
    schema = f"tessera_migrate_{uuid.uuid4().hex[:10]}"
    yield schema

    async def drop() -> None:
        store = create_store(url)
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await store.close()

    asyncio.run(drop())


@pytest.mark.postgres
def test_postgres_upgrade_builds_the_metadata_schema_and_is_idempotent(
        fresh_pg_schema: str) -> None:
    assert POSTGRES_URL
    upgrade_database(POSTGRES_URL, schema=fresh_pg_schema)
    first = snapshot(POSTGRES_URL, fresh_pg_schema)
    assert_at_head_matching_metadata(first)
    upgrade_database(POSTGRES_URL, schema=fresh_pg_schema)
    assert snapshot(POSTGRES_URL, fresh_pg_schema) == first


def _tessera(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    command = [str(Path(sys.executable).with_name("tessera")), "db", "upgrade"]
    return subprocess.run(command, env=clean | env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)


def test_cli_db_upgrade_with_a_database_url(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    for _ in range(2):
        done = _tessera(tmp_path, TESSERA_DATABASE_URL=f"sqlite:///{db}",
                        TESSERA_DATA_DIR=str(tmp_path / "data"))
        assert done.returncode == 0, done.stderr
        assert "latest schema" in done.stdout
    assert_at_head_matching_metadata(snapshot(f"sqlite:///{db}"))


def test_cli_db_upgrade_creates_the_default_sqlite_store_in_the_data_dir(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    done = _tessera(tmp_path, TESSERA_DATA_DIR=str(data_dir))
    assert done.returncode == 0, done.stderr
    assert_at_head_matching_metadata(snapshot(f"sqlite:///{data_dir / 'tessera.db'}"))
