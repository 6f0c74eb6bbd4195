"""Concurrent refreshes of one refresh token on PostgreSQL: exactly one rotation.

N requests with the same refresh token are fired at once, through one identity service
or split over two (two worker processes sharing the schema, each with its own pool).
Every request runs its unit of work on its own pooled connection, so the conditional
``rotate`` really races in the database (RFC 9700 §4.14.2, DESIGN §2).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from tessera.core.clock import FixedClock
from tessera.store.sql import SqlStore, create_store
from tests.conftest import POSTGRES_URL
from tests.integration.conftest import Instance, family_state, logged_in, refresh, running

pytestmark = pytest.mark.postgres

N = 8


class PeakConnections:
    """Largest number of connections checked out of one pool at the same time."""

    def __init__(self, store: SqlStore) -> None:
        self.now = self.peak = 0
        event.listen(store.engine.sync_engine, "checkout", self._out)
        event.listen(store.engine.sync_engine, "checkin", self._in)

    def _out(self, *_: Any) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def _in(self, *_: Any) -> None:
        self.now -= 1


@asynccontextmanager
async def workers(postgres_store: SqlStore, schema: str | None, clock: FixedClock,
                  tmp_path: Path, count: int, **settings: Any
                  ) -> AsyncIterator[tuple[list[Instance], list[PeakConnections]]]:
    """``count`` identity services on the same schema; the first owns the fixture store."""
    assert POSTGRES_URL and schema
    async with AsyncExitStack() as stack:
        stores = [postgres_store]
        for _ in range(count - 1):
            extra = create_store(POSTGRES_URL, schema=schema)
            stack.push_async_callback(extra.close)
            stores.append(extra)
        instances = [await stack.enter_async_context(running(store, clock, tmp_path,
                                                             **settings))
                     for store in stores]
        yield instances, [PeakConnections(store) for store in stores]


async def fire(instances: list[Instance], app: Any, refresh_token: str
               ) -> list[httpx.Response]:
    return await asyncio.gather(*(
        refresh(instances[i % len(instances)].driver, app, refresh_token) for i in range(N)))


@pytest.mark.parametrize("count", [1, 2], ids=["one-process", "two-processes"])
async def test_concurrent_refreshes_rotate_once_and_all_get_the_same_pair(
        postgres_store: SqlStore, postgres_schema: str | None, clock: FixedClock,
        tmp_path: Path, count: int) -> None:
    async with workers(postgres_store, postgres_schema, clock, tmp_path, count) as (
            instances, pools):
        app, tokens = await logged_in(instances[0].driver)
        old = tokens["refresh_token"]
        clock.advance(1)
        responses = await fire(instances, app, old)

        assert [r.status_code for r in responses] == [200] * N, [r.text for r in responses]
        bodies = [r.json() for r in responses]
        assert len({b["refresh_token"] for b in bodies}) == 1
        # the same access token: same header and claims (ES256 signatures are randomized)
        assert len({b["access_token"].rsplit(".", 1)[0] for b in bodies}) == 1
        new = bodies[0]["refresh_token"]
        assert new != old
        assert all(p.peak > 1 for p in pools), "the requests did not overlap in the database"

        state = await family_state(postgres_store, old)
        assert state.generations == {0: 1, 1: 1}
        assert state.family_revoke_reason is None and state.session_revoke_reason is None

        following = await refresh(instances[-1].driver, app, new)
        assert following.status_code == 200, following.text
        assert (await family_state(postgres_store, old)).generations == {0: 1, 1: 1, 2: 1}


@pytest.mark.parametrize("count", [1, 2], ids=["one-process", "two-processes"])
async def test_without_grace_the_losers_are_refused_and_the_family_is_revoked(
        postgres_store: SqlStore, postgres_schema: str | None, clock: FixedClock,
        tmp_path: Path, count: int) -> None:
    async with workers(postgres_store, postgres_schema, clock, tmp_path, count,
                       tokens={"refresh_grace_seconds": 0,
                               "refresh_retry_seconds": 0}) as (instances, _):
        app, tokens = await logged_in(instances[0].driver)
        old = tokens["refresh_token"]
        clock.advance(1)
        responses = await fire(instances, app, old)

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [400] * (N - 1), [r.text for r in responses]
        assert {r.json()["error"] for r in responses if r.status_code == 400} == {
            "invalid_grant"}
        state = await family_state(postgres_store, old)
        assert state.generations == {0: 1, 1: 1}
        assert state.family_revoke_reason == "refresh_reuse"
        assert state.session_revoke_reason == "refresh_reuse"
        winner = next(r.json() for r in responses if r.status_code == 200)
        after = await refresh(instances[0].driver, app, winner["refresh_token"])
        assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
