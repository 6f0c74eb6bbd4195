"""A database error mid-refresh loses nothing: the old refresh token still works or the
new one does, never neither (refresh_token.py, DESIGN §2). Runs on every store.

Failures are injected at three points — into the one-write hot path
(``RefreshRotations.rotate``) and, with the hot path turned away, into the unit of work
of the general path that rotates the token:
- the database fails right after the rotating UPDATE (a driver exception, which the
  real adapter must turn into ``StoreError``);
- the commit fails (nothing is written);
- the commit succeeds but its acknowledgement is lost (the client sees an error although
  the rotation is durable).
A fourth case loses the successful response itself on the way to the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from tessera.core.clock import FixedClock
from tessera.store.ports import (
    RefreshRead,
    RefreshRotation,
    RefreshRotations,
    RefreshSnapshot,
    StoreError,
    UnitOfWork,
)
from tessera.store.sql import SqlStore
from tests.integration.conftest import Instance, family_state, logged_in, refresh, running

DRIVER_ERROR_AFTER_ROTATE = "driver-error-after-rotate"
COMMIT_FAILS = "commit-fails"
COMMIT_ACK_LOST = "commit-ack-lost"


class _RotateSpy:
    def __init__(self, inner: Any, store: FailingStore) -> None:
        self._inner = inner
        self._store = store
        self.rotated = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def rotate(self, token_hash: str, *, successor_hash: str, at: float) -> bool:
        won: bool = await self._inner.rotate(token_hash, successor_hash=successor_hash, at=at)
        self.rotated = won
        if won and self._store.take(DRIVER_ERROR_AFTER_ROTATE):
            raise OperationalError("INSERT INTO refresh_tokens ...", {},
                                   ConnectionResetError("connection reset by peer"))
        return won


class _FailingRotations:
    """The hot path's read and write; the read finds nothing when the store sends every
    refresh down the general path."""

    def __init__(self, inner: RefreshRotations, store: FailingStore) -> None:
        self._inner = inner
        self._store = store

    async def read(self, token_hash: str, risk: RefreshRead | None = None
                   ) -> RefreshSnapshot | None:
        if self._store.general_path:
            return None
        return await self._inner.read(token_hash, risk)

    async def rotate(self, rotation: RefreshRotation) -> bool:
        if self._store.take(DRIVER_ERROR_AFTER_ROTATE):  # the one write fails: all of it
            raise OperationalError("SELECT tessera_rotate_refresh(...)", {},
                                   ConnectionResetError("connection reset by peer"))
        if self._store.take(COMMIT_FAILS):
            raise StoreError("injected: the commit failed")
        won = await self._inner.rotate(rotation)
        if won and self._store.take(COMMIT_ACK_LOST):
            raise StoreError("injected: connection lost after COMMIT was sent")
        return won


class FailingStore:
    """A real store; the next rotation of a refresh token fails once, at the armed
    point (in the hot path's write, or — ``general_path`` — in the general path's unit
    of work). Everything else is delegated."""

    def __init__(self, inner: SqlStore, *, general_path: bool = False) -> None:
        self.inner = inner
        self.armed: str | None = None
        self.general_path = general_path

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def take(self, point: str) -> bool:
        if self.armed != point:
            return False
        self.armed = None
        return True

    @asynccontextmanager
    async def refresh_rotations(self) -> AsyncIterator[RefreshRotations]:
        async with self.inner.refresh_rotations() as rotations:
            yield _FailingRotations(rotations, self)

    @asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[UnitOfWork]:
        async with self.inner.unit_of_work(read_only=read_only) as uow:
            spy = _RotateSpy(uow.refresh, self)
            uow.refresh = spy
            yield uow
            if spy.rotated and self.take(COMMIT_FAILS):
                raise StoreError("injected: the commit failed")
        if spy.rotated and self.take(COMMIT_ACK_LOST):
            raise StoreError("injected: connection lost after COMMIT was sent")


@pytest.fixture(params=["hot-path", "general-path"])
async def service(any_store: SqlStore, clock: FixedClock, tmp_path: Path,
                  request: pytest.FixtureRequest
                  ) -> AsyncIterator[tuple[Instance, FailingStore]]:
    store = FailingStore(any_store, general_path=request.param == "general-path")
    async with running(store, clock, tmp_path) as instance:  # type: ignore[arg-type]
        yield instance, store


def assert_temporarily_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "temporarily_unavailable"


@pytest.mark.parametrize("point", [DRIVER_ERROR_AFTER_ROTATE, COMMIT_FAILS])
async def test_a_failure_before_commit_is_a_503_and_the_old_token_still_works(
        service: tuple[Instance, FailingStore], any_store: SqlStore, clock: FixedClock,
        point: str) -> None:
    instance, store = service
    app, tokens = await logged_in(instance.driver)
    old = tokens["refresh_token"]

    store.armed = point
    failed = await refresh(instance.driver, app, old)
    assert store.armed is None, "the failure was not injected"
    assert_temporarily_unavailable(failed)
    assert (await family_state(any_store, old)).generations == {0: 1}  # rolled back

    clock.advance(1)
    retried = await refresh(instance.driver, app, old)
    assert retried.status_code == 200, retried.text
    following = await refresh(instance.driver, app, retried.json()["refresh_token"])
    assert following.status_code == 200, following.text
    state = await family_state(any_store, old)
    assert state.generations == {0: 1, 1: 1, 2: 1} and state.family_revoke_reason is None


async def test_a_lost_commit_acknowledgement_then_a_retry_gets_the_committed_pair(
        service: tuple[Instance, FailingStore], any_store: SqlStore,
        clock: FixedClock) -> None:
    instance, store = service
    app, tokens = await logged_in(instance.driver)
    old = tokens["refresh_token"]

    store.armed = COMMIT_ACK_LOST
    assert_temporarily_unavailable(await refresh(instance.driver, app, old))
    assert store.armed is None
    assert (await family_state(any_store, old)).generations == {0: 1, 1: 1}  # durable

    clock.advance(2)  # within the grace window
    retried = await refresh(instance.driver, app, old)
    assert retried.status_code == 200, retried.text
    following = await refresh(instance.driver, app, retried.json()["refresh_token"])
    assert following.status_code == 200, following.text
    state = await family_state(any_store, old)
    assert state.generations == {0: 1, 1: 1, 2: 1} and state.family_revoke_reason is None


async def test_a_lost_response_then_a_retry_within_grace_gets_the_same_pair(
        service: tuple[Instance, FailingStore], any_store: SqlStore,
        clock: FixedClock) -> None:
    instance, _ = service
    app, tokens = await logged_in(instance.driver)
    old = tokens["refresh_token"]

    lost = await refresh(instance.driver, app, old)  # committed; the client never sees it
    assert lost.status_code == 200, lost.text

    clock.advance(3)
    retried = await refresh(instance.driver, app, old)
    assert retried.status_code == 200, retried.text
    assert retried.json()["refresh_token"] == lost.json()["refresh_token"]
    # the same access token: same header and claims (ES256 signatures are randomized)
    assert (retried.json()["access_token"].rsplit(".", 1)[0]
            == lost.json()["access_token"].rsplit(".", 1)[0])
    assert (await family_state(any_store, old)).generations == {0: 1, 1: 1}

    following = await refresh(instance.driver, app, retried.json()["refresh_token"])
    assert following.status_code == 200, following.text


async def test_a_retry_after_the_retry_window_is_reuse(
        service: tuple[Instance, FailingStore], any_store: SqlStore,
        clock: FixedClock) -> None:
    """The limit of the guarantee: a lost-response retry must come within
    ``refresh_retry_seconds`` (and before the successor is used)."""
    instance, _ = service
    app, tokens = await logged_in(instance.driver)
    old = tokens["refresh_token"]
    lost = await refresh(instance.driver, app, old)
    assert lost.status_code == 200

    clock.advance(instance.identity.settings.tokens.refresh_retry_seconds + 1)
    late = await refresh(instance.driver, app, old)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    state = await family_state(any_store, old)
    assert state.family_revoke_reason == "refresh_reuse"
    assert state.session_revoke_reason == "refresh_reuse"
