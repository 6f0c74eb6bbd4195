"""The bus contract (tessera.bus.ports) on every adapter: in-process and Redis Streams."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from tessera.bus import BusGap, BusRewound, EventBus, InProcessBus, OutboxBatch
from tessera.core.freshness import Watermark
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
    await redis_bus._redis.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
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


# -- watermarks and epochs (tessera.core.freshness) ------------------------------------


async def next_watermark(bus: EventBus, after: int) -> tuple[list[int], Watermark]:
    """Events read until the first batch carrying a watermark, and that watermark."""
    seqs: list[int] = []
    follower = bus.follow(after, heartbeat=0.05)
    try:
        async with asyncio.timeout(5):
            async for batch in follower:
                seqs += [e.seq or 0 for e in batch]
                if batch.watermark is not None:
                    return seqs, batch.watermark
    finally:
        await follower.aclose()  # type: ignore[attr-defined]
    raise AssertionError("no watermark")


async def test_silence_is_not_a_watermark(bus: EventBus) -> None:
    await bus.publish([ev(1)])
    follower = bus.follow(1, heartbeat=0.05)
    first = await asyncio.wait_for(follower.__anext__(), 5)
    assert first == [] and first.watermark is None  # nobody marked: no proof
    await follower.aclose()  # type: ignore[attr-defined]


async def test_a_watermark_follows_the_events_it_covers(bus: EventBus) -> None:
    await bus.publish(OutboxBatch([ev(1), ev(2)], after=0))
    marked = await bus.mark(2, 123.5)
    assert (marked.head, marked.at) == (2, 123.5) and marked.epoch
    seqs, watermark = await next_watermark(bus, 0)
    assert seqs == [1, 2]
    assert watermark == marked


async def test_a_watermark_past_the_bus_top_is_refused(bus: EventBus) -> None:
    await bus.publish(OutboxBatch([ev(1)], after=0))
    with pytest.raises((BusRewound, ValueError)):
        await bus.mark(5, 1.0)


@pytest.mark.redis
async def test_redis_refuses_writes_across_a_lost_stream_until_republished() -> None:
    """Redis restarted empty: the epoch is gone with the stream. A relay's next write is
    refused (nothing written), it reopens a new epoch and republishes from the start;
    followers see the new epoch on the next watermark."""
    from tessera.bus.redis_streams import RedisStreamsBus

    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(url, stream=stream)
    try:
        await bus.publish(OutboxBatch([ev(1), ev(2)], after=0))
        old = (await bus.mark(2, 1.0)).epoch
        await bus._redis.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
        with pytest.raises(BusRewound):
            await bus.publish(OutboxBatch([ev(3)], after=2))
        with pytest.raises(BusRewound):  # a new epoch, but the stream lacks 1..2
            await bus.publish(OutboxBatch([ev(3)], after=2))
        assert await bus.last_seq() == 0
        assert await bus.publish(OutboxBatch([ev(1), ev(2), ev(3)], after=0)) == 3
        new = await bus.mark(3, 2.0)
        assert new.epoch != old
        seqs, watermark = await next_watermark(bus, 0)
        assert seqs == [1, 2, 3] and watermark.epoch == new.epoch
    finally:
        await bus._redis.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
        await bus.aclose()


@pytest.mark.redis
async def test_redis_a_watermark_past_what_the_stream_holds_is_a_gap() -> None:
    """The events a watermark covers were trimmed or lost: the follower must not sit
    waiting for them (stale forever) nor skip them — ``BusGap``, fetch them elsewhere."""
    from tessera.bus.redis_streams import RedisStreamsBus

    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(url, stream=stream)
    try:
        await bus.publish(OutboxBatch([ev(1), ev(2), ev(3)], after=0))
        await bus.mark(3, 1.0)
        await bus._redis.xdel(stream, "2-0", "3-0")  # lost after the watermark was written
        with pytest.raises(BusGap):
            await next_watermark(bus, 1)
        assert (await next_watermark(bus, 3))[1].head == 3  # a follower that has them
    finally:
        await bus._redis.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
        await bus.aclose()
