"""Logout at the identity service → a verifier in another process rejects the token long
before it expires: over the HTTP (SSE) feed and over Redis Streams; and, in one process,
over the in-process bus.

The identity service is ``tessera serve`` in a subprocess; each verifier is
``bench/_propagation_agent.py`` (``RevocationFollower`` + ``Verifier`` with ``JwksCache``)
answering over a pipe whether a token is accepted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tessera.core.clock import SystemClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.verifier import Denied, VerificationPolicy
from tessera.verifier.driver import Verifier
from tessera.verifier.jwks import JwksCache
from tessera.verifier.revocation import RevocationFollower, RevocationState
from tessera.verifier.revocation.sources import BusSource
from tests.conftest import REDIS_URL, require_service
from tests.support import TesseraDriver
from tests.system._procs import (
    AUDIENCE,
    SESSION_ENDED,
    Agent,
    Seed,
    Server,
    admin_revoke,
    agents,
    claims_of,
    free_port,
    login,
    logout,
    poll,
    seed,
    server_env,
    start_server,
)

PROPAGATION_BOUND = 3.0
"""Seconds within which a second process must reject (access tokens live 300 s)."""


async def _rejected_within(agent: Agent, token: str, started: float) -> tuple[str, float]:
    reason = await poll(lambda: agent.rejects(token), timeout=PROPAGATION_BOUND,
                        interval=0.01, what="the verifier rejects the token")
    return reason, time.monotonic() - started


async def _logout_then_admin_revoke(server: Server, seeded: Seed, pool: list[Agent]) -> None:
    # session 1: RP-initiated logout with the id_token_hint
    first = await login(server.url, seeded, seeded.usernames[0])
    second = await login(server.url, seeded, seeded.usernames[1])
    for agent in pool:
        assert await agent.accepts(first["access_token"])
        assert await agent.accepts(second["access_token"])
    started = time.monotonic()
    await logout(server.url, first["id_token"])
    for agent in pool:
        reason, took = await _rejected_within(agent, first["access_token"], started)
        assert reason in SESSION_ENDED
        exp = claims_of(first["access_token"])["exp"]
        assert time.time() < exp - 60, "rejected well before the token expires"
        assert took < PROPAGATION_BOUND
    # the other session is untouched
    for agent in pool:
        assert await agent.accepts(second["access_token"])
    # session 2: an operator revokes it through the admin API
    started = time.monotonic()
    await admin_revoke(server.url, seeded, sid=claims_of(second["access_token"])["sid"])
    for agent in pool:
        reason, _ = await _rejected_within(agent, second["access_token"], started)
        assert reason in SESSION_ENDED


@pytest.mark.parametrize("source", ["http", pytest.param("redis", marks=pytest.mark.redis)])
async def test_logout_reaches_verifier_processes(source: str, tmp_path: Path,
                                                 sqlite_template: Path) -> None:
    redis_url = require_service(REDIS_URL, "redis") if source == "redis" else None
    stream = f"tessera:test:{uuid.uuid4().hex}"
    data = tmp_path / "data"
    seeded = await seed(data, sqlite_template, users=2)
    env = server_env(data, free_port(), redis_url=redis_url, stream=stream)
    server = await start_server(data, env)
    try:
        async with agents(server, seeded, 2, source=source, tmp=tmp_path,
                          redis_url=redis_url, stream=stream) as pool:
            await _logout_then_admin_revoke(server, seeded, pool)
    finally:
        await server.stop()
        if redis_url:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(redis_url)
            await client.delete(stream)
            await client.aclose()


async def test_logout_reaches_a_verifier_in_the_same_process(
        identity: Identity, tessera: TesseraDriver) -> None:
    """The embedded default: the relay fills the in-process bus, a follower in the same
    process applies it, and the full ``Verifier`` rejects the logged-out token."""
    identity.start_relays()
    app = await tessera.web_client()
    await tessera.user("alice")
    state = RevocationState()
    follower = RevocationFollower(state, BusSource(identity.bus, heartbeat=0.05),
                                  clock=SystemClock())
    transport = httpx.ASGITransport(app=build_app(identity))
    verifier = Verifier(VerificationPolicy(issuer=identity.settings.issuer,
                                           audience=AUDIENCE),
                        jwks=JwksCache(identity.settings.issuer, clock=SystemClock(),
                                       transport=transport),
                        clock=SystemClock(), state=state)
    follower.start()
    try:
        await asyncio.wait_for(follower.synced(), 5)
        tokens = await tessera.login_tokens(app)
        assert (await verifier.verify(tokens["access_token"])).sid
        response = await tessera.http.get("/logout",
                                          params={"id_token_hint": tokens["id_token"]})
        assert response.status_code == 200

        async def rejected() -> bool:
            try:
                await verifier.verify(tokens["access_token"])
            except Denied as denied:
                assert denied.reason in SESSION_ENDED
                return True
            return False

        await poll(rejected, timeout=2, interval=0.005, what="in-process rejection")
    finally:
        await follower.aclose()
        await verifier.aclose()
        await identity.stop_relays()

