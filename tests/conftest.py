"""Shared fixtures: stores (SQLite always; PostgreSQL when configured, required in CI),
a wired identity service on an injectable clock, and an HTTP client bound to its app."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tessera.core.clock import FixedClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity, build_identity
from tessera.identity.login import PasswordHasher
from tessera.keys import Sealer
from tessera.settings import Settings
from tessera.store.migrations import upgrade_database
from tessera.store.sql import SqlStore, create_store
from tessera.store.sql.schema import metadata
from tests.support import TesseraDriver

ISSUER = "http://tessera.test"
KEK = Sealer.new_kek_b64()
POSTGRES_URL = os.environ.get("TESSERA_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("TESSERA_TEST_REDIS_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
METRICS_TOKEN = f"metrics-{uuid.uuid4().hex}{uuid.uuid4().hex}"
METRICS_AUTH = {"authorization": f"Bearer {METRICS_TOKEN}"}
"""``/metrics`` is not public by default (docs/metrics.md): tests scrape with this token."""


def require_service(url: str | None, name: str) -> str:
    """Skip a test that needs a real service, except in CI, where its absence fails."""
    if url:
        return url
    if IN_CI:
        pytest.fail(f"{name} is required in CI (set TESSERA_TEST_{name.upper()}_URL)")
    pytest.skip(f"{name} not configured (TESSERA_TEST_{name.upper()}_URL)")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied per test (migrating once keeps tests fast)."""
    path = tmp_path_factory.mktemp("template") / "tessera.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str | None]:
    """One migrated schema for the run; tables are emptied between tests."""
    if not POSTGRES_URL:
        yield None
        return
    schema = f"tessera_test_{uuid.uuid4().hex[:10]}"
    upgrade_database(POSTGRES_URL, schema=schema)
    yield schema

    async def drop() -> None:
        store = create_store(POSTGRES_URL)
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await store.close()

    asyncio.run(drop())


async def _postgres_store(schema: str) -> SqlStore:
    assert POSTGRES_URL
    store = create_store(POSTGRES_URL, schema=schema)
    async with store.engine.begin() as conn:
        tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return store


@pytest.fixture
async def sqlite_store(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[SqlStore]:
    path = tmp_path / "tessera.db"
    shutil.copy(sqlite_template, path)
    store = create_store(f"sqlite:///{path}")
    yield store
    await store.close()


@pytest.fixture
async def postgres_store(postgres_schema: str | None) -> AsyncIterator[SqlStore]:
    require_service(POSTGRES_URL, "postgres")
    assert postgres_schema
    store = await _postgres_store(postgres_schema)
    yield store
    await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest) -> SqlStore:
    """Parametrises a test over every store backend."""
    fixture = "sqlite_store" if request.param == "sqlite" else "postgres_store"
    store: SqlStore = request.getfixturevalue(fixture)
    return store


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(float(int(time.time())))


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"issuer": ISSUER, "data_dir": tmp_path,
                                 "keys": {"encryption_key": KEK}, "audit_log_json": False,
                                 "metrics": {"token": METRICS_TOKEN}}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


FAST_PASSWORDS = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


async def make_identity(settings: Settings, store: SqlStore, clock: FixedClock) -> Identity:
    return await build_identity(settings, store=store, clock=clock, passwords=FAST_PASSWORDS)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def identity(settings: Settings, sqlite_store: SqlStore,
                   clock: FixedClock) -> AsyncIterator[Identity]:
    built = await make_identity(settings, sqlite_store, clock)
    yield built
    await built.audit.aclose()


@pytest.fixture
async def http(identity: Identity) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


@pytest.fixture
def tessera(identity: Identity, http: httpx.AsyncClient) -> TesseraDriver:
    """Drives the service the way a client application would."""
    return TesseraDriver(identity, http)
