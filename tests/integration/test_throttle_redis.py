"""The throttles on Redis skip the moving-window read while no hit is recorded anywhere
(``tessera.identity.throttle_redis``), and only then: two "instances" (two throttle sets,
two clients) on the machine's Redis, each with a prefix of its own test."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tessera.identity.throttle_redis import SignalledRedisStorage
from tessera.identity.throttles import Throttles, build_throttles
from tests.conftest import REDIS_URL, make_settings, require_service

pytestmark = pytest.mark.redis


@pytest.fixture
async def instances() -> AsyncIterator[tuple[Throttles, Throttles]]:
    url = require_service(REDIS_URL, "Redis")
    settings = make_settings(Path("."), bus={"redis_url": url},
                             security={"throttle_key_prefix": f"t-{uuid.uuid4().hex}",
                                       "client_auth_failures_per_minute": 3,
                                       "throttle_window": 2})
    first, second = build_throttles(settings), build_throttles(settings)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


def _storage(throttles: Throttles) -> SignalledRedisStorage:
    assert isinstance(throttles.storage, SignalledRedisStorage)
    return throttles.storage


async def _until(condition: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


def _count_reads(storage: SignalledRedisStorage) -> list[str]:
    """Record the moving-window reads the storage makes from now on."""
    reads: list[str] = []
    original = storage.get_moving_window

    async def counted(key: str, limit: int, expiry: int) -> Any:
        reads.append(key)
        return await original(key, limit, expiry)

    storage.get_moving_window = counted  # type: ignore[method-assign]
    return reads


async def test_no_hit_anywhere_skips_the_read_and_a_hit_elsewhere_ends_that(
        instances: tuple[Throttles, Throttles]) -> None:
    first, second = instances
    reads = _count_reads(_storage(second))
    assert not await second.client_auth.blocked("client\x00addr")  # starts the listener
    await _until(_storage(second).nothing_recorded, "subscribed and quiet")
    before = len(reads)
    for _ in range(20):
        assert not await second.client_auth.blocked("client\x00addr")
    assert len(reads) == before, "no hit recorded anywhere: no round trip"

    # another instance records failures: this one hears of it and reads the window again
    assert [await first.client_auth.hit("client\x00addr") for _ in range(4)] == \
        [True, True, True, False]
    await _until(lambda: not _storage(second).nothing_recorded(), "the hit heard")
    assert await second.client_auth.blocked("client\x00addr")
    assert not await second.client_auth.blocked("other\x00addr")
    assert len(reads) == before + 2

    # the window (2 s here) passes: the count has slid away and the fast path is back
    await _until(_storage(second).nothing_recorded, "quiet after the window", timeout=5)
    assert not await second.client_auth.blocked("client\x00addr")


async def test_a_hit_before_the_listener_started_is_not_missed(
        instances: tuple[Throttles, Throttles]) -> None:
    first, second = instances
    assert [await first.client_auth.hit("k") for _ in range(4)] == [True, True, True, False]
    assert await second.client_auth.blocked("k")  # starts its listener: reads the window
    listener = _storage(second).listener
    await _until(lambda: listener.listening, "subscribed")
    assert not _storage(second).nothing_recorded(), "the mark holds the earlier hits"
    assert await second.client_auth.blocked("k")


async def test_a_lost_subscription_means_every_check_reads_redis_until_it_is_back(
        instances: tuple[Throttles, Throttles]) -> None:
    first, second = instances
    storage = _storage(second)
    assert not await second.client_auth.blocked("k")
    await _until(storage.nothing_recorded, "subscribed and quiet")
    host, port = storage.listener._pubsub.connection._writer.get_extra_info("sockname")[:2]
    await storage.listener._client.client_kill_filter(addr=f"{host}:{port}")
    await _until(lambda: not storage.listener.listening, "the loss noticed")
    reads = _count_reads(storage)
    assert not await second.client_auth.blocked("k")
    assert reads, "while not subscribed, the window is read"
    # a hit while the listener was away still counts, through the mark
    assert [await first.client_auth.hit("k") for _ in range(4)] == [True, True, True, False]
    await _until(lambda: storage.listener.listening, "subscribed again")
    assert not storage.nothing_recorded()
    assert await second.client_auth.blocked("k")


def test_a_listener_left_behind_by_its_loop_proves_nothing_on_the_next() -> None:
    """A throttle outliving its event loop (a test's, a reloaded server's): the listener
    of the old loop is gone, so the next loop's checks read Redis until a listener of its
    own has subscribed (and one is started: not left waiting on the ended one)."""
    url = require_service(REDIS_URL, "Redis")
    settings = make_settings(Path("."), bus={"redis_url": url},
                             security={"throttle_key_prefix": f"t-{uuid.uuid4().hex}"})
    throttles = build_throttles(settings)
    storage = _storage(throttles)

    async def first_loop() -> None:
        assert not await throttles.client_auth.blocked("k")
        await _until(storage.nothing_recorded, "subscribed and quiet")
        await storage.listener._client.connection_pool.disconnect()  # the loop's sockets

    async def next_loop() -> None:
        assert not storage.nothing_recorded(), "a listener of an ended loop proves nothing"
        await _until(storage.nothing_recorded, "a listener of its own")
        await throttles.aclose()

    asyncio.run(first_loop())
    asyncio.run(next_loop())


async def test_a_silent_partition_ends_the_fast_path_and_checks_fail_in_bounded_time(
        caplog: pytest.LogCaptureFixture) -> None:
    """No RST, no FIN: the listener's pings go unanswered, so within three beats it stops
    vouching (a hit announced meanwhile would not reach it); a check then reads Redis, and
    that read fails after the client's timeout instead of hanging the authentication —
    the throttle counts in memory meanwhile."""
    from tessera.identity.throttle_redis import HEARTBEAT
    from tests.system._procs import TcpProxy

    url = require_service(REDIS_URL, "Redis")
    proxy = TcpProxy(int(url.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    settings = make_settings(Path("."), bus={"redis_url": proxy.url},
                             security={"throttle_key_prefix": f"t-{uuid.uuid4().hex}"})
    throttles = build_throttles(settings)
    storage = _storage(throttles)
    try:
        assert not await throttles.client_auth.blocked("k")
        await _until(storage.nothing_recorded, "subscribed and quiet")
        proxy.blackhole()
        started = time.monotonic()
        await _until(lambda: not storage.nothing_recorded(), "the silence noticed",
                     timeout=3 * HEARTBEAT + 2)
        assert time.monotonic() - started <= 3 * HEARTBEAT + 1
        started = time.monotonic()
        async with asyncio.timeout(10):  # a check waits the timeout, not for ever
            assert not await throttles.client_auth.blocked("k")  # counted in memory now
        assert time.monotonic() - started < 5
        assert any("storage failed" in r.getMessage() for r in caplog.records)
    finally:
        await throttles.aclose()
        await proxy.aclose()


async def test_a_hit_whose_message_is_refused_is_still_counted_and_seen_within_a_beat(
        instances: tuple[Throttles, Throttles], monkeypatch: pytest.MonkeyPatch) -> None:
    """An ACL without ``+publish`` (or a lost message): the hit is counted in Redis all
    the same (not in memory), and the other processes see its mark at their next ping."""
    from redis.exceptions import NoPermissionError

    from tessera.identity.throttle_redis import HEARTBEAT

    first, second = instances
    assert not await second.client_auth.blocked("k")
    await _until(_storage(second).nothing_recorded, "subscribed and quiet")

    async def refused(*_args: Any) -> int:
        raise NoPermissionError("this user has no permissions to run the 'publish' command")

    monkeypatch.setattr(_storage(first).listener._client, "publish", refused)
    assert [await first.client_auth.hit("k") for _ in range(4)] == [True, True, True, False]
    assert not first.client_auth._failing, "counted in Redis, not in memory"
    started = time.monotonic()
    await _until(lambda: not _storage(second).nothing_recorded(), "the mark seen",
                 timeout=3 * HEARTBEAT + 2)
    assert time.monotonic() - started <= 3 * HEARTBEAT + 1  # a beat, and a loaded CI
    assert await second.client_auth.blocked("k")
