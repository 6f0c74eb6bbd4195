"""The bus contract (tessera.bus.ports) on every adapter: in-process and Redis Streams."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tessera.bus import BusBatch, BusGap, BusRewound, EventBus, InProcessBus, OutboxBatch
from tessera.bus.ports import event_to_wire
from tessera.core.freshness import Watermark
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.verifier.revocation import RevocationState
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


async def test_a_complete_batch_arrives_with_its_watermark_in_one_read(bus: EventBus
                                                                         ) -> None:
    """``complete_at``: the events and the watermark they prove reach a waiting follower
    together (one wake-up per revocation), epoch stamped like a mark's."""
    follower = bus.follow(0, heartbeat=5)
    waiting = asyncio.ensure_future(follower.__anext__())
    await asyncio.sleep(0.05)  # the follower blocks in its read
    await bus.publish(OutboxBatch([ev(1), ev(2)], after=0, complete_at=123.5))
    first = await asyncio.wait_for(waiting, 5)
    assert [e.seq for e in first] == [1, 2]
    assert first.watermark is not None
    assert (first.watermark.head, first.watermark.at) == (2, 123.5) and first.watermark.epoch
    again = await bus.publish(OutboxBatch([ev(2)], after=1, complete_at=124.0))
    assert again == 0  # already there: the watermark is written apart, still proven
    seqs, watermark = await next_watermark(bus, 2)
    assert seqs == [] and watermark is not None and (watermark.head, watermark.at) == (
        2, 124.0)
    await follower.aclose()  # type: ignore[attr-defined]


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


async def _first_batch(bus: EventBus, after: int) -> BusBatch:
    follower = bus.follow(after, heartbeat=0.05)
    async for batch in follower:
        if batch:
            break
    await follower.aclose()  # type: ignore[attr-defined]
    assert isinstance(batch, BusBatch)
    return batch


@pytest.mark.redis
async def test_redis_entries_carry_the_stage_stamps_and_old_entries_still_read() -> None:
    """Telemetry for the propagation split (issue 15): the relay's wake-up and read times
    and Redis's own time of the XADD ride with each entry; the follower stamps when its
    read returned and passes on the last entry's stamps of each read (a sample, O(1) per
    read); an entry without them (an older publisher) reads as before."""
    import time

    from tessera.bus.redis_streams import RedisStreamsBus
    from tessera.verifier.revocation.sources import BusSource

    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(url, stream=stream)
    try:
        before = time.time()
        await bus.publish(OutboxBatch([ev(1), ev(2)], after=0, woken_at=before - 0.5,
                                      read_at=before - 0.25))
        after = time.time()
        first = await _first_batch(bus, 0)
        assert [e.seq for e in first] == [1, 2]
        assert list(first.timing) == [2], "the last entry of the read"
        stamps = first.timing[2]
        assert (stamps["relay_woken"], stamps["relay_read"]) == (before - 0.5, before - 0.25)
        # Redis's clock (the same host here): between the publish call and its return
        assert before - 0.05 <= stamps["bus_added"] <= after + 0.05
        assert stamps["bus_added"] <= stamps["received"]

        await bus.publish([ev(3)])  # a plain list: no relay stamps, Redis's still
        assert set((await _first_batch(bus, 2)).timing[3]) == {"bus_added", "received"}
        await bus._redis.xadd(stream, {"e": orjson.dumps(event_to_wire(ev(4))), "p": 3},
                              id="4-0")  # as a publisher without stamps wrote it
        assert set((await _first_batch(bus, 3)).timing[4]) == {"received"}

        # The verifier's wire event carries them under "timing"; applying ignores them.
        feed = BusSource(bus, heartbeat=0.05).follow(0)
        wire: list[Any] = []
        async for fed in feed:
            wire.extend(fed)
            if len(wire) >= 4:
                break
        await feed.aclose()  # type: ignore[attr-defined]
        assert [("timing" in e) for e in wire] == [False, False, False, True]
        state = RevocationState()
        for event in wire:
            assert state.apply(event)
        assert state.cursor == 4
    finally:
        await bus._redis.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
        await bus.aclose()


@pytest.mark.redis
async def test_redis_follow_wire_gives_the_events_as_the_stream_holds_them() -> None:
    """A verifier on Redis applies the events as it read them (issue 15: no event object
    built per event only to be turned back into a dict): ``follow_wire`` yields the wire
    shape, the watermark the batch proves and the last entry's stamps under "timing";
    the verifier's Redis source reads through it; ``follow`` gives the same events as
    objects, their stamps by seq."""
    import time

    from tessera.bus.ports import WireBatch
    from tessera.bus.redis_streams import RedisStreamsBus
    from tessera.verifier.revocation.sources import HttpFeedSource, RedisStreamSource

    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(url, stream=stream)
    source = RedisStreamSource(url, stream=stream, heartbeat=0.05, snapshot_from=HttpFeedSource(
        "http://127.0.0.1:9", client_id="c", client_secret="s"))  # never reached here

    async def first(feed: Any) -> Any:
        async for batch in feed:
            if batch:
                await feed.aclose()
                return batch
        raise AssertionError("the feed ended")

    opened: list[Any] = []
    follow_wire = source._redis_bus.follow_wire

    def recorded(after: int, **kwargs: Any) -> Any:
        opened.append(follow_wire(after, **kwargs))
        return opened[-1]

    source._redis_bus.follow_wire = recorded  # type: ignore[method-assign]
    try:
        read_at = time.time()
        await bus.publish(OutboxBatch([ev(1), ev(2)], after=0, read_at=read_at,
                                      complete_at=read_at))
        for wire in (await first(bus.follow_wire(0, heartbeat=0.05)),
                     await first(source.follow(0))):
            assert isinstance(wire, WireBatch)
            assert [{k: v for k, v in e.items() if k != "timing"} for e in wire] == \
                [event_to_wire(ev(1)), event_to_wire(ev(2))]
            assert "timing" not in wire[0] and wire[1]["timing"]["relay_read"] == read_at
            assert wire.watermark == Watermark(2, read_at, bus.epoch)
        assert len(opened) == 1 and opened[0].ag_frame is None, \
            "the source's read ended with its feed (its connection closed)"
        batch = await _first_batch(bus, 0)
        assert list(batch) == [ev(1), ev(2)] and list(batch.timing) == [2]
        assert batch.watermark == Watermark(2, read_at, bus.epoch)
    finally:
        await bus._redis.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
        await source.aclose()
        await bus.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("protocol", [2, 3])
async def test_redis_a_follower_reads_on_its_own_connection(protocol: int) -> None:
    """The blocking read holds a connection of its own, not one of the client's pool (which
    stays free for publishing), and reads RESP2 and RESP3 replies alike (the URL may ask
    for either); the connection closes with the follower."""
    import redis.asyncio as aioredis

    from tessera.bus.redis_streams import RedisStreamsBus

    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    client = aioredis.Redis.from_url(url, protocol=protocol, socket_timeout=5)
    bus = RedisStreamsBus(client, stream=stream, socket_timeout=5)
    pool: Any = client.connection_pool
    try:
        await bus.publish(OutboxBatch([ev(1)], after=0, complete_at=1.0))
        follower = bus.follow(0, heartbeat=0.05)
        first = await asyncio.wait_for(follower.__anext__(), 5)
        assert [e.seq for e in first] == [1] and first[0] == ev(1)
        assert first.watermark is not None and first.watermark.head == 1
        waiting = asyncio.ensure_future(follower.__anext__())
        await asyncio.sleep(0.02)  # blocked in XREAD now
        assert not pool._in_use_connections, "the pool's connections stay free"
        await bus.publish(OutboxBatch([ev(2), ev(3)], after=1))
        assert [e.seq for e in await asyncio.wait_for(waiting, 5)] == [2, 3]
        await follower.aclose()  # type: ignore[attr-defined]
        clients = await client.client_list()
        assert sum(1 for c in clients if c.get("cmd") == "xread") == 0, \
            "the follower's connection closed with it"
    finally:
        await client.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
        await bus.aclose()


@pytest.mark.redis
async def test_redis_a_read_past_its_deadline_fails_and_closes_the_connection() -> None:
    """A read with no reply within the socket timeout (a silent partition) fails as a
    timeout, which ``follow`` reports as ``BusUnavailable``; the connection is closed, not
    left with a reply pending for the next read to mistake for its own."""
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from tessera.bus.redis_streams import RedisStreamsBus

    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    # 0.5 s: the follower's block is half of it, so a loaded machine (a CI run) still
    # answers its empty read well within the deadline
    bus = RedisStreamsBus.from_url(url, stream=stream, socket_timeout=0.5)
    reader = bus._reader()
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(RedisTimeoutError):  # BLOCK 2 s: no reply before the deadline
            await reader.xread({stream: "0-0"}, 2000)
        assert asyncio.get_running_loop().time() - started < 1.5
        assert not reader._connection.is_connected
        await bus.publish([ev(1)])
        assert [(name, [e for e, _ in entries]) for name, entries in
                await reader.xread({stream: "0-0"}, None)] == [(stream.encode(), [b"1-0"])]
        follower = bus.follow(0, heartbeat=10.0)  # its block is kept under the timeout
        assert [e.seq for e in await asyncio.wait_for(follower.__anext__(), 5)] == [1]
        assert await asyncio.wait_for(follower.__anext__(), 5) == []
        await follower.aclose()  # type: ignore[attr-defined]
    finally:
        await reader.aclose()
        await bus._redis.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
        await bus.aclose()
