"""Verifier revocation state follows the identity service: over the HTTP (SSE) feed, over
Redis Streams, and in one process over the in-process bus."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from tessera.application import admin
from tessera.core.clock import SystemClock
from tessera.identity.compose import Identity
from tessera.verifier.revocation import RevocationFollower, RevocationState
from tessera.verifier.revocation.sources import BusSource, HttpFeedSource
from tests.polling import eventually
from tests.system.conftest import LiveService


async def revoke_a_session(identity: Identity, user_id: str) -> None:
    await admin.revoke(identity.admin, user_id=user_id, reason="test", actor="test")


async def open_session(live: LiveService) -> tuple[str, str]:
    app = await live.driver.web_client()
    user_id = await live.driver.user(f"u-{uuid.uuid4().hex[:6]}")
    tokens = await live.driver.login_tokens(app, username=await _name(live, user_id))
    return user_id, tokens["access_token"]


async def _name(live: LiveService, user_id: str) -> str:
    async with live.identity.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    return user.username


def sid_revoked(state: RevocationState, count: int) -> bool:
    return state.cursor >= count


async def test_http_feed_delivers_a_logout_and_resumes_after_a_dropped_connection(
        live: LiveService) -> None:
    feed = await live.feed_client()
    assert feed.secret
    state = RevocationState()
    follower = RevocationFollower(
        state, HttpFeedSource(live.url, client_id=feed.client_id, client_secret=feed.secret,
                              heartbeat_timeout=2.0), clock=SystemClock())
    follower.start()
    try:
        await asyncio.wait_for(follower.synced(), 5)
        user_id, _ = await open_session(live)
        await revoke_a_session(live.identity, user_id)
        await eventually(lambda: state.cursor > 0)
        first = state.cursor
        # Drop the connection: close the follower's HTTP client transport mid-stream.
        await follower.aclose()
        user2, _ = await open_session(live)
        await revoke_a_session(live.identity, user2)
        follower = RevocationFollower(state, HttpFeedSource(
            live.url, client_id=feed.client_id, client_secret=feed.secret),
            clock=SystemClock())
        follower.start()
        await eventually(lambda: state.cursor > first)
    finally:
        await follower.aclose()


async def test_feed_requires_a_client_with_the_events_scope(live: LiveService) -> None:
    other = await live.driver.client()
    response = await live.http.get("/revocations/snapshot", auth=(other.client_id,
                                                                  other.secret or ""))
    assert response.status_code == 403
    response = await live.http.get("/revocations/events")
    assert response.status_code == 401


async def test_in_process_bus_follower(identity: Identity, http: httpx.AsyncClient) -> None:
    for relay in identity.relays:  # only the outbox relays: what fills the in-process bus
        relay.start()
    state = RevocationState()
    follower = RevocationFollower(state, BusSource(identity.bus, heartbeat=0.05),
                                  clock=SystemClock())
    follower.start()
    try:
        await asyncio.wait_for(follower.synced(), 5)
        user = await admin.create_user(identity.admin, username="bob", password="long password")
        # no session yet: a user-level revocation is still an event
        await revoke_a_session(identity, user.user_id)
        await eventually(lambda: state.cursor > 0, timeout=2)
    finally:
        await follower.aclose()
        for relay in identity.relays:
            await relay.aclose()
