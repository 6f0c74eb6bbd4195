"""Redis dies (SIGKILL) or a verifier's connection is cut while revocations happen.

Each test runs its own ``redis-server`` on a free port (the machine's shared Redis is never
touched) with no persistence, so a restart comes back *empty*: the stream and everything
on it is gone. What must hold:

- the identity service keeps committing revocations (the outbox holds them) and its relay
  republishes them once Redis is back, including events Redis had already taken and lost;
- every verifier converges, and no revoked token is accepted once it has caught up;
- while a verifier cannot hear the relay, strict routes deny with ``stale_state`` past
  their bound; ordinary routes keep serving from the last known state until theirs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tessera.bus import BusGap, BusRewound, OutboxBatch, event_to_wire
from tessera.bus.redis_streams import RedisStreamsBus
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.verifier import Reason
from tests.conftest import REDIS_URL, require_service
from tests.system._procs import (
    SESSION_ENDED,
    Agent,
    PrivateRedis,
    Seed,
    Server,
    TcpProxy,
    agents,
    claims_of,
    free_port,
    login,
    logout,
    poll,
    seed,
    server_env,
    start_agent,
    start_server,
)

pytestmark = pytest.mark.redis

STALENESS = 1.0
"""The strict route's bound (s). Agents hear Redis every 0.2 s while connected."""
CONVERGE = 8.0
"""Seconds allowed to converge after Redis is back (relay retry + follower backoff)."""


@dataclass
class Rig:
    redis: PrivateRedis
    server: Server
    seed: Seed
    stream: str


@pytest.fixture
async def rig(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Rig]:
    require_service(REDIS_URL, "redis")  # CI provides redis-server alongside its Redis
    redis = PrivateRedis(tmp_path)
    await redis.start()
    data = tmp_path / "data"
    seeded = await seed(data, sqlite_template, users=5)
    stream = f"tessera:test:{uuid.uuid4().hex}"
    server = await start_server(data, server_env(data, free_port(), redis_url=redis.url,
                                                 stream=stream))
    try:
        yield Rig(redis, server, seeded, stream)
    finally:
        await server.stop()
        await redis.kill()


async def _rejects(agent: Agent, token: str, *, timeout: float) -> str:
    reason: str = await poll(lambda: agent.rejects(token), timeout=timeout, interval=0.05,
                             what="the verifier rejects the revoked token")
    return reason


async def test_redis_killed_and_restarted_empty(rig: Rig, tmp_path: Path) -> None:
    sessions = [await login(rig.server.url, rig.seed, name) for name in rig.seed.usernames]
    tokens = [s["access_token"] for s in sessions]
    async with agents(rig.server, rig.seed, 2, source="redis", tmp=tmp_path,
                      redis_url=rig.redis.url, stream=rig.stream) as pool:
        await logout(rig.server.url, sessions[0]["id_token"])
        for agent in pool:
            assert await _rejects(agent, tokens[0], timeout=3) in SESSION_ENDED
            assert await agent.accepts(tokens[4], strict=True)

        await rig.redis.kill()
        outage = time.monotonic()
        # revocations keep committing while the bus is down
        await logout(rig.server.url, sessions[1]["id_token"])
        await logout(rig.server.url, sessions[2]["id_token"])
        for agent in pool:
            # strict routes fail closed once the bound is passed ...
            reason = await poll(lambda a=agent: a.rejects(tokens[4], strict=True),
                                timeout=STALENESS + 3, interval=0.05, what="stale_state")
            assert reason == Reason.STALE_STATE
            assert time.monotonic() - outage > STALENESS - 0.3  # last heard <= 0.2 s before
            # ... others serve from the last known state (it cannot know of logouts 1, 2)
            assert await agent.accepts(tokens[4])
            assert await agent.rejects(tokens[0]) in SESSION_ENDED

        await rig.redis.start()  # same port, empty: the stream is gone
        for agent in pool:
            for token in tokens[1:3]:
                assert await _rejects(agent, token, timeout=CONVERGE) in SESSION_ENDED
            assert await agent.rejects(tokens[0]) in SESSION_ENDED
            await poll(lambda a=agent: a.accepts(tokens[4], strict=True),
                       timeout=CONVERGE, what="fresh again")
        # and the bus works as before
        await logout(rig.server.url, sessions[3]["id_token"])
        for agent in pool:
            assert await _rejects(agent, tokens[3], timeout=3) in SESSION_ENDED
        assert await pool[0].accepts(tokens[4], strict=True)


async def test_verifier_cut_off_while_redis_loses_an_event(rig: Rig, tmp_path: Path) -> None:
    """A verifier is disconnected; meanwhile a revocation reaches Redis (another verifier
    sees it), then Redis restarts empty and no new revocation follows. When the verifier
    reconnects, the event is not on the bus any more: the relay must notice the bus went
    backwards and republish, or the verifier would accept the revoked token until expiry."""
    sessions = [await login(rig.server.url, rig.seed, name) for name in rig.seed.usernames[:2]]
    tokens = [s["access_token"] for s in sessions]
    proxy = TcpProxy(rig.redis.port)
    await proxy.start()
    cut = await start_agent(rig.server, rig.seed, source="redis", tmp=tmp_path,
                            redis_url=proxy.url, stream=rig.stream, name="cut")
    try:
        async with agents(rig.server, rig.seed, 1, source="redis", tmp=tmp_path,
                          redis_url=rig.redis.url, stream=rig.stream) as (direct,):
            proxy.refuse()
            await logout(rig.server.url, sessions[0]["id_token"])
            assert await _rejects(direct, tokens[0], timeout=3) in SESSION_ENDED
            # the cut-off verifier: strict routes deny, others still accept (it cannot know)
            reason = await poll(lambda: cut.rejects(tokens[1], strict=True),
                                timeout=STALENESS + 3, what="stale_state")
            assert reason == Reason.STALE_STATE
            assert await cut.accepts(tokens[0])

            await rig.redis.kill()
            await rig.redis.start()
            proxy.forward()
            assert await _rejects(cut, tokens[0], timeout=CONVERGE) in SESSION_ENDED
            await poll(lambda: cut.accepts(tokens[1], strict=True),
                       timeout=CONVERGE, what="fresh again")
            assert await direct.rejects(tokens[0]) in SESSION_ENDED
    finally:
        await cut.close()
        await proxy.aclose()


async def test_silently_dropped_connection_is_detected(rig: Rig, tmp_path: Path) -> None:
    """A partition nobody reports (no RST, no FIN): the blocking read would wait forever.
    The verifier must notice (socket timeout), reconnect, and catch up."""
    sessions = [await login(rig.server.url, rig.seed, name) for name in rig.seed.usernames[:2]]
    tokens = [s["access_token"] for s in sessions]
    proxy = TcpProxy(rig.redis.port)
    await proxy.start()
    cut = await start_agent(rig.server, rig.seed, source="redis", tmp=tmp_path,
                            redis_url=proxy.url, stream=rig.stream, name="silent")
    try:
        assert await cut.accepts(tokens[1], strict=True)
        proxy.blackhole()
        await logout(rig.server.url, sessions[0]["id_token"])
        reason = await poll(lambda: cut.rejects(tokens[1], strict=True),
                            timeout=STALENESS + 3, what="stale_state")
        assert reason == Reason.STALE_STATE
        proxy.forward()  # new connections work; the blackholed one stays dead
        assert await _rejects(cut, tokens[0], timeout=15) in SESSION_ENDED
        await poll(lambda: cut.accepts(tokens[1], strict=True),
                   timeout=CONVERGE, what="fresh again")
        assert claims_of(tokens[0])["exp"] > time.time() + 60
    finally:
        await cut.close()
        await proxy.aclose()


def _event(seq: int) -> RevocationEvent:
    return RevocationEvent(RevocationKind.SESSION_REVOKED, f"sid-{seq}", at=1.0,
                           expires_at=2e9, seq=seq)


async def _first_batch(bus: RedisStreamsBus, cursor: int) -> list[int]:
    follower = bus.follow(cursor, heartbeat=0.05)
    try:
        async with asyncio.timeout(5):
            async for batch in follower:
                if batch:
                    return [e.seq or 0 for e in batch]
        return []
    finally:
        await follower.aclose()  # type: ignore[attr-defined]


async def test_a_relay_cannot_build_on_lost_events_and_followers_detect_them() -> None:
    """Redis lost the stream. A relay that has not noticed cannot publish a later event
    on top of the hole (``BusRewound``: it must republish from the outbox), whether the
    epoch went too (a restart) or survived (a failover to a replica that lagged). Should
    a stream still hold such a hole (written by an older relay), a follower behind the
    lost events gets ``BusGap`` (→ range fetch), not a skip; one that had read them
    carries on. Seqs may skip (a burned seq 4 here), so this rests on each entry naming
    its predecessor, not on ``seq - 1``."""
    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(url, stream=stream)
    try:
        await bus.publish(OutboxBatch([_event(1), _event(2), _event(3)], after=0))
        assert await _first_batch(bus, 1) == [2, 3]
        await bus._redis.delete(stream)  # failover: entries lost, the epoch key kept
        with pytest.raises(BusRewound):
            await bus.publish(OutboxBatch([_event(5)], after=3))
        await bus._redis.delete(f"{stream}:epoch")  # a restart loses the epoch too
        with pytest.raises(BusRewound):
            await bus.publish(OutboxBatch([_event(5)], after=3))
        with pytest.raises(BusRewound):  # a new epoch, and still no hole allowed
            await bus.publish(OutboxBatch([_event(5)], after=3))
        assert await bus._redis.exists(stream) == 0
        await bus._redis.xadd(stream, {"e": orjson.dumps(event_to_wire(_event(5))), "p": 3},
                              id="5-0")  # what an older relay would have done
        assert await _first_batch(bus, 3) == [5]  # nothing lost for this one
        with pytest.raises(BusGap):
            await _first_batch(bus, 1)  # 2 and 3 are gone: fetch them elsewhere
    finally:
        await bus._redis.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
        await bus.aclose()
