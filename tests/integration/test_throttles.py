"""The throttles (``tessera.identity.throttles``) on each storage: the window slides, a
limit cannot be overshot by parallel attempts, counts are shared between processes (the
workers' file) and between instances (real Redis), a failing storage falls back to
memory. The login flows over them are in tests/e2e/test_login_throttle.py and, across two
``tessera serve`` processes on Redis, tests/system/test_login_throttle.py."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
import uuid
from pathlib import Path

import pytest
from limits.aio.storage import RedisStorage, Storage

from tessera.identity.throttles import (
    FileStorage,
    LimitsThrottle,
    SafeMemoryStorage,
    build_throttles,
)
from tests.conftest import REDIS_URL, make_settings, require_service
from tests.integration._throttle_worker import hit_shared_key


def _throttle(storage: Storage, limit: int = 3, window: int = 60,
              prefix: str | None = None) -> LimitsThrottle:
    return LimitsThrottle("test", limit, window, storage,
                          prefix=prefix or f"t-{uuid.uuid4().hex}")


async def _hits(throttle: LimitsThrottle, key: str, n: int) -> list[bool]:
    return [await throttle.hit(key) for _ in range(n)]


@pytest.fixture(params=["memory", "file"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return SafeMemoryStorage() if request.param == "memory" \
        else FileStorage(tmp_path / "t.db")


async def test_a_key_is_held_at_its_limit_and_others_are_not(storage: Storage) -> None:
    throttle = _throttle(storage)
    assert not await throttle.blocked("alice")
    assert await _hits(throttle, "alice", 5) == [True, True, True, False, False]
    assert await throttle.blocked("alice")
    assert not await throttle.blocked("bob") and await throttle.hit("bob")
    await throttle.clear("alice")
    assert not await throttle.blocked("alice") and await throttle.hit("alice")


async def test_the_window_slides(storage: Storage) -> None:
    throttle = _throttle(storage, limit=2, window=1)
    assert await _hits(throttle, "k", 3) == [True, True, False]
    deadline = time.monotonic() + 5
    while await throttle.blocked("k"):
        assert time.monotonic() < deadline, "still blocked long after the window"
        await asyncio.sleep(0.05)
    assert await throttle.hit("k")


async def test_parallel_attempts_cannot_overshoot(storage: Storage) -> None:
    throttle = _throttle(storage, limit=5)
    results = await asyncio.gather(*(throttle.hit("k") for _ in range(40)))
    assert sum(results) == 5


async def test_the_fast_path_sees_another_process_s_failures_at_once(tmp_path: Path
                                                                     ) -> None:
    """``blocked`` skips the window read while no hit is recorded anywhere; a hit by
    another process (its own connection to the workers' file) ends that at once."""
    ours, theirs = FileStorage(tmp_path / "t.db"), FileStorage(tmp_path / "t.db")
    prefix = f"t-{uuid.uuid4().hex}"
    mine, other = _throttle(ours, limit=2, prefix=prefix), _throttle(theirs, limit=2,
                                                                      prefix=prefix)
    assert ours.nothing_recorded() and not await mine.blocked("k")
    assert await _hits(other, "k", 2) == [True, True]
    assert not ours.nothing_recorded()
    assert await mine.blocked("k"), "the other process's failures count here at once"
    assert not await mine.blocked("another key")


async def test_a_commit_that_never_set_the_change_mark_is_seen_within_a_second(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path trusts the change mark that writers set after their commit; a writer
    that died between the two costs at most a second, not a throttle forever open."""
    ours, theirs = FileStorage(tmp_path / "t.db"), FileStorage(tmp_path / "t.db")
    assert ours.nothing_recorded()
    monkeypatch.setattr(theirs._mark, "touch", lambda: None)  # committed, mark not set
    await _hits(_throttle(theirs, limit=5), "k", 1)
    assert ours.nothing_recorded(), "the mark is what the fast path reads"
    later = time.monotonic() + 1.0
    monkeypatch.setattr("tessera.identity.throttles.time.monotonic", lambda: later)
    assert not ours.nothing_recorded()
    assert (tmp_path / "t.db-mark").stat().st_mode & 0o777 == 0o600


async def test_the_memory_fast_path_ends_with_the_first_hit() -> None:
    storage = SafeMemoryStorage()
    throttle = _throttle(storage, limit=1)
    assert storage.nothing_recorded() and not await throttle.blocked("k")
    assert await throttle.hit("k")
    assert not storage.nothing_recorded() and await throttle.blocked("k")


def test_the_workers_file_is_one_count_for_every_process(tmp_path: Path) -> None:
    """What ``tessera serve --workers N`` without Redis uses: 3 processes × 10 parallel
    attempts on one key with a limit of 7 get exactly 7 through."""
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[int] = context.Queue()
    prefix = f"t-{uuid.uuid4().hex}"
    procs = [context.Process(target=hit_shared_key,
                             args=(str(tmp_path / "throttles.db"), prefix, 7, 10, queue))
             for _ in range(3)]
    for proc in procs:
        proc.start()
    try:
        allowed = [queue.get(timeout=60) for _ in procs]
    finally:
        for proc in procs:
            proc.join(30)
    assert sum(allowed) == 7, allowed
    assert (tmp_path / "throttles.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.redis
async def test_redis_counts_once_for_every_instance() -> None:
    url = require_service(REDIS_URL, "Redis")
    prefix = f"tessera-test-{uuid.uuid4().hex}"
    settings = make_settings(Path("."), bus={"redis_url": url},
                             security={"throttle_key_prefix": prefix,
                                       "login_attempts_per_minute": 4})
    first, second = build_throttles(settings), build_throttles(settings)
    try:
        assert isinstance(first.storage, RedisStorage)
        assert first.storage is not second.storage  # two clients, like two instances
        results = [await (first if i % 2 else second).login_account.hit("t\x00alice")
                   for i in range(6)]
        assert results == [True] * 4 + [False] * 2
        assert await first.login_account.blocked("t\x00alice")
        assert not await second.login_account.blocked("t\x00bob")
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_failing_storage_falls_back_to_counting_in_memory(
        caplog: pytest.LogCaptureFixture) -> None:
    down = make_settings(Path("."), bus={"redis_url": "redis://127.0.0.1:1/0"},
                         security={"login_attempts_per_minute": 2})
    throttles = build_throttles(down)
    try:
        assert await _hits(throttles.login_account, "k", 3) == [True, True, False]
        assert await throttles.login_account.blocked("k")
    finally:
        await throttles.aclose()
    warnings = [r for r in caplog.records if "storage failed" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per request


class FlakyStorage(SafeMemoryStorage):
    """Fails while ``down``; says nothing is recorded when asked (as the Redis storage
    does while subscribed and no hit is announced)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.reads = 0

    def nothing_recorded(self) -> bool:
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int
                                ) -> tuple[float, int]:
        self.reads += 1
        if self.down:
            raise ConnectionError("storage down")
        return await super().get_moving_window(key, limit, expiry)

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1
                            ) -> bool:
        if self.down:
            raise ConnectionError("storage down")
        return await super().acquire_entry(key, limit, expiry, amount)


async def test_after_a_storage_failure_the_fast_path_waits_a_whole_window(
        caplog: pytest.LogCaptureFixture) -> None:
    """Hits counted in memory during a failure are unknown to the storage: checks read
    the storage (and the memory while it fails) until a window has passed since the last
    failure, then the fast path is back; a later failure is reported again."""
    caplog.set_level(logging.INFO, logger="tessera.identity")
    storage, now = FlakyStorage(), [1000.0]
    throttle = LimitsThrottle("test", 2, 60, storage, prefix=f"t-{uuid.uuid4().hex}",
                              monotonic=lambda: now[0])
    assert not await throttle.blocked("k") and storage.reads == 0  # the fast path
    storage.down = True
    assert await _hits(throttle, "k", 3) == [True, True, False]  # in memory
    assert await throttle.blocked("k")
    storage.down = False
    now[0] += 59
    assert not await throttle.blocked("k") and storage.reads > 0  # read, not assumed
    now[0] += 1
    reads = storage.reads
    assert not await throttle.blocked("k") and storage.reads == reads  # fast path again
    storage.down = True
    assert await throttle.hit("other")
    warnings = [r for r in caplog.records if "storage failed" in r.getMessage()]
    assert len(warnings) == 2  # once per failure, not per request
    assert any("fast path back" in r.getMessage() for r in caplog.records)


def test_more_than_one_worker_without_redis_shares_a_file(tmp_path: Path) -> None:
    single = build_throttles(make_settings(tmp_path))
    shared = build_throttles(make_settings(tmp_path, server={"workers": 2}))
    assert isinstance(single.storage, SafeMemoryStorage)
    assert isinstance(shared.storage, FileStorage)
    assert (tmp_path / "throttles.db").exists()
