"""The bus contract (tessera.bus.ports) on every adapter: in-process and Redis Streams."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tessera.bus import BusGap, EventBus, InProcessBus
from tessera.core.revocation import RevocationEvent, RevocationKind
from tests.conftest import REDIS_URL, require_service


def ev(seq: int, key: str | None = None) -> RevocationEvent:
    return RevocationEvent(RevocationKind.SESSION_REVOKED, key or f"sid-{seq}", at=float(seq),
                           expires_at=10_000.0, data={"n": seq}, seq=seq)


@pytest.fixture(params=["inprocess", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    if request.param == "inprocess":
        yield InProcessBus(capacity=100)
        return
    from tessera.bus.redis_streams import RedisStreamsBus

    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    redis_bus = RedisStreamsBus.from_url(url, stream=stream, maxlen=1000)
    yield redis_bus
    await redis_bus._redis.delete(stream)
    await redis_bus.aclose()


async def take(bus: EventBus, after: int, count: int) -> list[RevocationEvent]:
    got: list[RevocationEvent] = []
    follower = bus.follow(after, heartbeat=0.05)
    async for batch in follower:
        got.extend(batch)
        if len(got) >= count:
            break
    await follower.aclose()  # type: ignore[attr-defined]
    return got


async def test_publish_is_ordered_and_idempotent_by_seq(bus: EventBus) -> None:
    assert await bus.last_seq() == 0
    assert await bus.publish([ev(1), ev(2), ev(3)]) == 3
    assert await bus.publish([ev(2), ev(3), ev(4)]) == 1  # a relay repeating itself
    assert await bus.last_seq() == 4
    got = await take(bus, 0, 4)
    assert [e.seq for e in got] == [1, 2, 3, 4]
    assert got[0] == ev(1)


async def test_follow_resumes_from_a_cursor(bus: EventBus) -> None:
    await bus.publish([ev(s) for s in (1, 2, 5, 9)])  # gaps in seq are normal
    assert [e.seq for e in await take(bus, 2, 2)] == [5, 9]


async def test_follow_delivers_events_published_while_waiting(bus: EventBus) -> None:
    await bus.publish([ev(1)])
    follower = asyncio.ensure_future(take(bus, 1, 2))
    await asyncio.sleep(0.1)
    await bus.publish([ev(2), ev(3)])
    got = await asyncio.wait_for(follower, 5)
    assert [e.seq for e in got] == [2, 3]


async def test_an_idle_follower_gets_heartbeats(bus: EventBus) -> None:
    follower = bus.follow(0, heartbeat=0.05)
    first = await asyncio.wait_for(follower.__anext__(), 5)
    assert first == []
    await follower.aclose()  # type: ignore[attr-defined]


async def test_in_process_trimming_is_reported_as_a_gap() -> None:
    bus = InProcessBus(capacity=3)
    await bus.publish([ev(s) for s in range(1, 7)])
    with pytest.raises(BusGap):
        await take(bus, 1, 1)
    assert [e.seq for e in await take(bus, 3, 3)] == [4, 5, 6]


@pytest.mark.redis
async def test_redis_trimming_is_reported_as_a_gap() -> None:
    from tessera.bus.redis_streams import RedisStreamsBus

    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(url, stream=stream)
    try:
        await bus.publish([ev(s) for s in range(1, 7)])
        await bus._redis.xtrim(stream, maxlen=2, approximate=False)  # as MAXLEN would
        with pytest.raises(BusGap):
            await take(bus, 1, 1)
        assert [e.seq for e in await take(bus, 4, 2)] == [5, 6]
        assert await bus.last_seq() == 6
    finally:
        await bus._redis.delete(stream)
        await bus.aclose()
