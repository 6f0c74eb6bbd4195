"""Liveness and readiness of the identity service (``/healthz``, ``/readyz``): what the
Kubernetes probes and the Dockerfile's HEALTHCHECK ask (deploy/)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from tessera.identity.health import check_database, readiness_endpoint
from tessera.store.ports import StoreError, UnitOfWork
from tessera.store.sql import create_store
from tests.support import TesseraDriver


async def test_live_and_ready_on_a_reachable_database(tessera: TesseraDriver) -> None:
    live = await tessera.http.get("/healthz")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = await tessera.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}
    assert ready.headers["cache-control"] == "no-store"
    assert (await tessera.http.head("/readyz")).status_code == 200


class _BrokenStore:
    """A store whose database is down (``StoreError``) or hangs."""

    def __init__(self, *, hang: bool) -> None:
        self.hang = hang

    @asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[UnitOfWork]:
        if self.hang:
            await asyncio.Event().wait()
        raise StoreError("database unavailable: OSError")
        yield  # pragma: no cover

    def on_outbox_commit(self, listener: object) -> None: ...

    def hand_off_outbox(self, listener: object) -> None: ...

    async def close(self) -> None: ...


@pytest.mark.parametrize(("hang", "state"), [(False, "unreachable"), (True, "timeout")])
async def test_not_ready_when_the_database_fails_or_hangs(hang: bool, state: str) -> None:
    store = _BrokenStore(hang=hang)
    app = Starlette(routes=[Route("/readyz", readiness_endpoint(store, within=0.2))])  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": state}}


async def test_an_unmigrated_database_is_not_ready(tmp_path: object) -> None:
    store = create_store(f"sqlite:///{tmp_path}/empty.db")
    try:
        assert await check_database(store) == "unreachable"
    finally:
        await store.close()
