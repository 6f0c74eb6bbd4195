"""The throttles of the identity service, on the ``limits`` library (moving windows).

==========================  ====================================  ===========================
throttle                    key                                   counts
==========================  ====================================  ===========================
``login_account``           tenant + username (existing or not)   password attempts, before
                                                                  the check; a success clears
``login_address``           client address                        failed passwords, any account
``totp``                    user                                  code attempts, before the
                                                                  check; a success clears
``client_auth``             client_id + client address            failed client secrets
``device_user_code``        client address                        user codes submitted at
                                                                  ``/device``, before the
                                                                  check (RFC 8628 §5.1)
==========================  ====================================  ===========================

Where the counts live (``throttle_storage``): Redis when ``bus.redis_url`` is set (one
count for every worker of every instance, under ``security.throttle_key_prefix``; hits
are announced so that a check with none recorded anywhere skips the round trip,
``tessera.identity.throttle_redis``); with
``tessera serve --workers N`` and no Redis, a SQLite file in the data directory shared by
that host's workers (``FileStorage``); else this process's memory. When the storage
fails (Redis down) a throttle counts in memory instead and says so in the log, once:
throttling goes on per process rather than stopping, and logins are not refused for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, MovingWindowSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from tessera.core.secrets import token_hash
from tessera.settings import Settings
from tessera.store.sql.engine import secure_sqlite_files

__all__ = ["FileStorage", "LimitsThrottle", "SafeMemoryStorage", "Throttles",
           "build_throttles", "throttle_storage"]

_log = logging.getLogger("tessera.identity")
_PRUNE_EVERY: Final = 500
T = TypeVar("T")


class SafeMemoryStorage(MemoryStorage):
    """``limits``' memory storage whose ``clear`` cannot race its own expiry task (which
    reads a key's events under the key's lock and fails on a key ``clear`` popped)."""

    STORAGE_SCHEME = ["tessera+memory"]

    async def clear(self, key: str) -> None:
        async with self.locks[key]:
            self.events[key] = []
            self.storage.pop(key, None)
            self.expirations.pop(key, None)

    def nothing_recorded(self) -> bool:
        """No key has a hit (every window is empty): ``LimitsThrottle.blocked``'s fast
        path."""
        return not any(self.events.values()) and not any(self.storage.values())


class LimitsThrottle:
    """``protocol.throttle.Throttle`` on a ``limits`` moving window of ``limit`` per
    ``window`` seconds, with a per-process fallback when the storage fails."""

    def __init__(self, name: str, limit: int, window: int, storage: Storage, *,
                 prefix: str, fallback: SafeMemoryStorage | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._window = window
        self._monotonic = monotonic
        self._item = RateLimitItemPerSecond(limit, window)
        self._limiter = MovingWindowRateLimiter(storage)
        quiet = getattr(storage, "nothing_recorded", None)
        self._quiet: Callable[[], bool] | None = quiet if callable(quiet) else None
        """Cheap proof that no key has a hit (the local stores; Redis through announced
        hits, ``throttle_redis``; not a Redis Cluster)."""
        self._fallback = MovingWindowRateLimiter(fallback or SafeMemoryStorage())
        self._prefix = f"{prefix}:{name}"
        self._failed_at: float | None = None
        """When the storage last failed. Hits counted in memory meanwhile are unknown to
        the storage (and to ``quiet``), and the storage may have missed others: the
        fast path stays off until a whole window has passed since, when every such hit
        has expired."""

    @property
    def _failing(self) -> bool:
        if self._failed_at is not None \
                and self._monotonic() - self._failed_at >= self._window:
            self._failed_at = None
            _log.info("throttle %s: storage working for a whole window; fast path back",
                      self.name)
        return self._failed_at is not None

    def _key(self, key: str) -> str:
        return token_hash(key)

    async def blocked(self, key: str) -> bool:
        try:
            if self._quiet is not None and not self._failing and self._quiet():
                return False  # no failure recorded anywhere: every window is empty
            allowed = await self._limiter.test(self._item, self._prefix, self._key(key))
        except Exception as exc:
            self._storage_failed(exc)
            allowed = await self._fallback.test(self._item, self._prefix, self._key(key))
        return not allowed

    async def hit(self, key: str) -> bool:
        try:
            return await self._limiter.hit(self._item, self._prefix, self._key(key))
        except Exception as exc:
            self._storage_failed(exc)
            return await self._fallback.hit(self._item, self._prefix, self._key(key))

    async def clear(self, key: str) -> None:
        try:
            await self._limiter.clear(self._item, self._prefix, self._key(key))
        except Exception as exc:
            self._storage_failed(exc)
        await self._fallback.clear(self._item, self._prefix, self._key(key))

    def _storage_failed(self, exc: Exception) -> None:
        if not self._failing:
            _log.warning("throttle %s: storage failed (%s); counting in this process",
                         self.name, type(exc).__name__)
        self._failed_at = self._monotonic()


@dataclass(frozen=True)
class Throttles:
    login_account: LimitsThrottle
    login_address: LimitsThrottle
    totp: LimitsThrottle
    client_auth: LimitsThrottle
    storage: Storage
    close: Callable[[], Awaitable[None]]
    """Releases the storage's connections (Redis)."""
    device_user_code: LimitsThrottle | None = None

    async def aclose(self) -> None:
        await self.close()


def key_prefix(settings: Settings) -> str:
    return settings.security.throttle_key_prefix or f"{settings.bus.stream}:throttle"


async def _nothing() -> None:
    return None


def throttle_storage(settings: Settings) -> tuple[Storage, Callable[[], Awaitable[None]]]:
    """Redis (``bus.redis_url``), the workers' shared file, or memory (module docstring);
    and how to release it."""
    url = settings.bus.redis_url
    if url:
        from tessera.bus.redis_url import limits_storage, parse
        from tessera.identity.throttle_redis import SignalledRedisStorage

        if parse(url).mode == "cluster":
            storage, client = limits_storage(url, wrap_exceptions=True)
            return storage, client.aclose
        signalled, client = limits_storage(
            url, storage_class=SignalledRedisStorage, wrap_exceptions=True,
            hits_channel=f"{key_prefix(settings)}:hits")

        async def close_both() -> None:
            await signalled.listener.aclose()
            await client.aclose()

        return signalled, close_both
    if settings.server.workers > 1:
        shared = FileStorage(settings.data_dir / "throttles.db")

        async def close() -> None:
            shared.close()

        return shared, close
    return SafeMemoryStorage(), _nothing


def build_throttles(settings: Settings, storage: Storage | None = None) -> Throttles:
    """The five throttles of the module docstring, on one storage."""
    sec = settings.security
    close: Callable[[], Awaitable[None]] = _nothing
    if storage is None:
        storage, close = throttle_storage(settings)

    def make(name: str, limit: int) -> LimitsThrottle:
        return LimitsThrottle(name, limit, sec.throttle_window, storage,
                              prefix=key_prefix(settings))

    return Throttles(login_account=make("login-account", sec.login_attempts_per_minute),
                     login_address=make("login-address",
                                        sec.login_failures_per_address_per_minute),
                     totp=make("totp", sec.totp_failures_per_minute),
                     client_auth=make("client-auth", sec.client_auth_failures_per_minute),
                     storage=storage, close=close,
                     device_user_code=make("device-user-code",
                                           settings.device.user_code_attempts_per_minute))


class _ChangeMark:
    """Eight bytes in a file beside the throttle database, shared by every process of the
    host through the page cache: each writer sets a fresh random value after its commit,
    so one memory read tells a reader whether anything may have been committed since it
    last looked (``PRAGMA data_version`` costs a read transaction, ~20 µs per request)."""

    SIZE: Final = 8

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            self._map = mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)

    def read(self) -> bytes:
        return self._map[:self.SIZE]

    def touch(self) -> None:
        self._map[:self.SIZE] = os.urandom(self.SIZE)

    def close(self) -> None:
        self._map.close()


class FileStorage(Storage, MovingWindowSupport):
    """Moving windows in a SQLite file (WAL, mode 0600): one count for every process of
    one host that opens it. Reads (``test``, on every client authentication) are one
    indexed query on the event loop: WAL readers never wait for writers. Writes are one
    short transaction in a thread; writers serialise on SQLite's lock
    (``BEGIN IMMEDIATE``)."""

    STORAGE_SCHEME = ["tessera+file"]

    def __init__(self, path: Path, uri: str | None = None, wrap_exceptions: bool = True,
                 **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._path = path
        self._ops = 0
        self._writers = threading.local()
        self._opened: list[sqlite3.Connection] = []
        secure_sqlite_files(f"sqlite:///{path}")
        with contextlib.closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, "
                       "at REAL NOT NULL, expires REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS hits_key ON hits (key, at)")
        self._reader = self._connect()
        self._mark = _ChangeMark(path.with_name(path.name + "-mark"))
        self._seen: bytes | None = None
        self._seen_at = 0.0
        self._empty = False

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=5.0, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA busy_timeout=5000")
        self._opened.append(db)
        return db

    def close(self) -> None:
        """Close every connection (the reader and each writer thread's)."""
        while self._opened:
            self._opened.pop().close()
        self._mark.close()

    def _read(self, sql: str, *args: Any) -> tuple[Any, ...]:
        row: tuple[Any, ...] = self._reader.execute(sql, args).fetchone()
        return row

    def nothing_recorded(self) -> bool:
        """The file holds no hit at all (every window is empty): ``LimitsThrottle.
        blocked``'s fast path. Re-read only when a writer has committed since (the change
        mark, set after every commit of every process) or a second has passed (a writer
        that died between its commit and the mark costs at most that long)."""
        mark, now = self._mark.read(), time.monotonic()
        if mark != self._seen or now - self._seen_at >= 1.0:
            self._seen, self._seen_at = mark, now  # taken before the read: never too late
            (self._empty,) = self._read("SELECT NOT EXISTS (SELECT 1 FROM hits)")
        return bool(self._empty)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._transaction, fn, *args)

    def _transaction(self, fn: Callable[..., T], *args: Any) -> T:
        db: sqlite3.Connection | None = getattr(self._writers, "db", None)
        if db is None:
            db = self._writers.db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            result = fn(db, time.time(), *args)
            self._ops += 1
            if self._ops % _PRUNE_EVERY == 0:
                db.execute("DELETE FROM hits WHERE expires <= ?", (time.time(),))
            db.execute("COMMIT")
            self._mark.touch()
            return result
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _acquire(db: sqlite3.Connection, now: float, key: str, limit: int,
                 expiry: float, amount: int) -> bool:
        db.execute("DELETE FROM hits WHERE key = ? AND at <= ?", (key, now - expiry))
        (count,) = db.execute("SELECT count(*) FROM hits WHERE key = ?", (key,)).fetchone()
        if count + amount > limit:
            return False
        db.executemany("INSERT INTO hits (key, at, expires) VALUES (?, ?, ?)",
                       [(key, now, now + expiry)] * amount)
        return True

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1
                            ) -> bool:
        if amount > limit:
            return False
        return await self._write(self._acquire, key, limit, expiry, amount)

    async def get_moving_window(self, key: str, limit: int, expiry: int
                                ) -> tuple[float, int]:
        now = time.time()
        oldest, count = self._read("SELECT min(at), count(*) FROM hits "
                                   "WHERE key = ? AND at > ?", key, now - expiry)
        return (oldest if oldest is not None else now), int(count)

    # fixed-window operations, on the same rows (``limits`` requires them of a storage)
    @staticmethod
    def _incr(db: sqlite3.Connection, now: float, key: str, expiry: float, amount: int
              ) -> int:
        db.executemany("INSERT INTO hits (key, at, expires) VALUES (?, ?, ?)",
                       [(key, now, now + expiry)] * amount)
        (count,) = db.execute("SELECT count(*) FROM hits WHERE key = ? AND expires > ?",
                              (key, now)).fetchone()
        return int(count)

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return await self._write(self._incr, key, expiry, amount)

    async def get(self, key: str) -> int:
        (count,) = self._read("SELECT count(*) FROM hits WHERE key = ? AND expires > ?",
                              key, time.time())
        return int(count)

    async def get_expiry(self, key: str) -> float:
        (latest,) = self._read("SELECT max(expires) FROM hits WHERE key = ?", key)
        return float(latest) if latest is not None else time.time()

    async def check(self) -> bool:
        return self._read("SELECT 1") == (1,)

    async def reset(self) -> int | None:
        deleted: int = await self._write(lambda db, now: db.execute("DELETE FROM hits").rowcount)
        return deleted

    async def clear(self, key: str) -> None:
        await self._write(lambda db, now: db.execute("DELETE FROM hits WHERE key = ?", (key,)))
