"""Relay crash between commit and publish: the event still arrives.

A revocation is one outbox row committed with the state change; publishing happens after
the commit, in a relay. Two ways to commit with no relay running in that process:

- ``tessera sessions revoke`` (the CLI commits to the outbox and exits; it runs no
  relay): a running server's relay finds the row by polling and publishes it;
- the identity service is SIGKILLed, the revocation is committed while no service runs,
  then a new service starts: its relay resumes from the bus's own position.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tessera.verifier import Reason
from tests.conftest import REDIS_URL, require_service
from tests.system._procs import (
    SESSION_ENDED,
    agents,
    claims_of,
    free_port,
    login,
    poll,
    seed,
    server_env,
    start_agent,
    start_server,
)

pytestmark = pytest.mark.redis


@pytest.fixture
async def stream() -> AsyncIterator[str]:
    url = require_service(REDIS_URL, "redis")
    name = f"tessera:test:{uuid.uuid4().hex}"
    yield name
    client = aioredis.Redis.from_url(url)
    await client.delete(name)
    await client.aclose()


async def _stream_top(stream: str) -> int:
    client = aioredis.Redis.from_url(REDIS_URL or "")
    try:
        entries = await client.xrevrange(stream, count=1)
    finally:
        await client.aclose()
    return int(entries[0][0].decode().split("-")[0]) if entries else 0


async def test_cli_revocation_is_relayed_by_the_running_server(
        tmp_path: Path, sqlite_template: Path, stream: str) -> None:
    data = tmp_path / "data"
    seeded = await seed(data, sqlite_template, users=1)
    server = await start_server(data, server_env(data, free_port(), redis_url=REDIS_URL,
                                                 stream=stream))
    try:
        tokens = await login(server.url, seeded, seeded.usernames[0])
        token = tokens["access_token"]
        async with agents(server, seeded, 1, source="redis", tmp=tmp_path,
                          redis_url=REDIS_URL, stream=stream) as (over_redis,):
            over_http = await start_agent(server, seeded, source="http", tmp=tmp_path,
                                          name="http-agent")
            try:
                for agent in (over_redis, over_http):
                    assert await agent.accepts(token)
                await server.cli("sessions", "revoke", "--sid", claims_of(token)["sid"],
                                 "--reason", "test")
                for agent in (over_redis, over_http):
                    reason = await poll(lambda a=agent: a.rejects(token), timeout=5,
                                        what="CLI revocation relayed")
                    assert reason in SESSION_ENDED
            finally:
                await over_http.close()
    finally:
        await server.stop()


async def test_service_killed_then_restarted_publishes_what_was_committed(
        tmp_path: Path, sqlite_template: Path, stream: str) -> None:
    data = tmp_path / "data"
    seeded = await seed(data, sqlite_template, users=2)
    env = server_env(data, free_port(), redis_url=REDIS_URL, stream=stream)
    server = await start_server(data, env, name="first")
    try:
        first = await login(server.url, seeded, seeded.usernames[0])
        second = await login(server.url, seeded, seeded.usernames[1])
        async with agents(server, seeded, 1, source="redis", tmp=tmp_path,
                          redis_url=REDIS_URL, stream=stream) as (agent,):
            await server.cli("sessions", "revoke", "--sid",
                             claims_of(first["access_token"])["sid"])
            await poll(lambda: agent.rejects(first["access_token"]), timeout=5,
                       what="baseline revocation relayed")
            published = await _stream_top(stream)

            await server.proc.kill()  # SIGKILL: no shutdown, no relay
            # committed while no relay runs anywhere
            await server.cli("sessions", "revoke", "--sid",
                             claims_of(second["access_token"])["sid"])
            assert await _stream_top(stream) == published, "nothing published it yet"
            # Redis still answers, but no relay marks a watermark: the verifier cannot
            # vouch for what it has not heard, and strict routes refuse past their 1 s
            # bound instead of accepting the revoked token (issue 10).
            reason = await poll(lambda: agent.rejects(second["access_token"], strict=True),
                                timeout=5, what="stale_state while no relay runs")
            assert reason == Reason.STALE_STATE

            server = await start_server(data, env, name="second")  # same port, new process
            reason = await poll(lambda: agent.rejects(second["access_token"]), timeout=5,
                                what="the restarted relay publishes the committed event")
            assert reason in SESSION_ENDED
            assert await _stream_top(stream) > published
            status = await agent.status()
            assert status["resyncs"] == 0, "delivered on the stream, not by a snapshot"
    finally:
        await server.stop()
