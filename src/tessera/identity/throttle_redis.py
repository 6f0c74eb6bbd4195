"""The throttles' Redis storage, with a cheap proof that no hit was recorded anywhere.

Every client authentication asks its throttle whether the client is blocked: on Redis a
moving-window script, one round trip (~0.3 ms and ~12% of the identity service's CPU per
``/revoke`` in ``bench/propagation.py``), although failures are rare. The local stores
answer "nothing recorded" from memory (``SafeMemoryStorage.nothing_recorded``); this
storage does the same for every process that shares the Redis:

- each hit (``acquire_entry``) first announces itself: ``SET <prefix>:hits:mark`` for the
  hit's window (it must succeed, else the hit is counted in memory as when Redis is
  down) and ``PUBLISH <prefix>:hits``, then counts as before;
- each process subscribes to that channel (``HitListener``) and, once subscribed, reads
  the mark: a hit before the subscription is in the mark, one after it arrives as a
  message. It pings every ``HEARTBEAT`` s, reads the mark again with each ping (a hit
  whose message was lost or refused, e.g. by an ACL without ``+publish``, is seen within
  a beat), and takes a connection that stays silent for three beats as dead;
- ``nothing_recorded()`` is true only while subscribed and no hit's window is still
  open. Otherwise, and while the listener is (re)connecting, every check reads the
  moving window as before.

What it can miss: a hit announced in the instant before a check on another process has
received the message (under a millisecond on one network; the moving window's own check
and count are not atomic either, so concurrent guesses race it the same way), and, when
the subscription's connection dies silently, the hits announced until the missed pings
show it (at most ``3 × HEARTBEAT``). The counts themselves are never skipped: every
failure is recorded in the moving window, and any check after the message reads it.
All throttles share one window (``security.throttle_window``); the mark lasts as long
as the latest hit's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

from limits.aio.storage import RedisStorage

__all__ = ["HEARTBEAT", "HitListener", "SignalledRedisStorage"]

_log = logging.getLogger("tessera.identity")
HEARTBEAT: Final = 0.5
"""Seconds between the listener's pings; three missed beats end its connection."""
_MAX_BACKOFF: Final = 2.0


class HitListener:
    """This process's view of the hits announced on ``channel`` (module docstring)."""

    def __init__(self, client: Any, channel: str, mark: str) -> None:
        self._client = client
        self.channel = channel
        self.mark = mark
        self.listening = False
        """Subscribed, and the mark read since: messages now cover every new hit."""
        self._open_until = 0.0
        """Monotonic time until which a hit's window may still be open."""
        self._task: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self._publish_failures = 0

    def quiet(self) -> bool:
        """No hit's window open anywhere, as far as a working subscription proves. The
        first call starts the listener (it answers ``False`` until subscribed)."""
        task, loop = self._task, asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            # first use, or the listener of a loop that ended (its flag proves nothing)
            self.listening = False
            self._task = loop.create_task(self._listen())
            return False
        return self.listening and time.monotonic() >= self._open_until

    def heard(self, window: float) -> None:
        """A hit was announced (here or by another process): not quiet for ``window``."""
        self._open_until = max(self._open_until, time.monotonic() + window)

    async def announce(self, window: int) -> None:
        """Tell every process (this one first) about a hit whose window is ``window`` s:
        the mark must be set (else this raises, and the hit is counted in memory as when
        Redis is down); the message only hastens the others (without it, an ACL without
        ``+publish``, they read the mark at their next beat)."""
        self.heard(window)
        await self._client.set(self.mark, window, px=window * 1000)
        try:
            await self._client.publish(self.channel, window)
        except Exception as exc:
            self._publish_failures += 1
            if self._publish_failures in (1, 100):
                _log.warning("throttle hit not published (%s); other processes see it "
                             "within %.1fs", type(exc).__name__, HEARTBEAT)

    async def _listen(self) -> None:
        backoff, failures = 0.05, 0
        while True:
            pubsub = self._pubsub = self._client.pubsub()
            try:
                await self._follow(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a listener must never die: retry, checks go on
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    _log.warning("throttle hit listener: %s (%d so far); every check reads "
                                 "Redis until it is back", type(exc).__name__, failures)
            finally:
                if self.listening:  # it had worked: the next attempt starts quick again
                    backoff = 0.05
                self.listening = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(_MAX_BACKOFF, backoff * 2)

    async def _follow(self, pubsub: Any) -> None:
        await pubsub.subscribe(self.channel)
        heard = pinged = time.monotonic()
        while True:
            message = await pubsub.get_message(timeout=HEARTBEAT)
            now = time.monotonic()
            if message is not None:
                heard = now
                kind = message.get("type")
                if kind in ("subscribe", b"subscribe"):
                    await self._read_mark()  # hits before we listened
                    self.listening = True
                elif kind in ("message", b"message"):
                    self.heard(_window(message.get("data")))
            if now - heard > 3 * HEARTBEAT:
                raise ConnectionError("no answer to three pings")
            if now - pinged >= HEARTBEAT:
                await pubsub.ping()
                await self._read_mark()  # a hit whose message was not published
                pinged = now

    async def _read_mark(self) -> None:
        """The mark's time left; a read that takes longer than a beat ends the
        subscription like a missed pong (the client's own timeout is longer)."""
        async with asyncio.timeout(HEARTBEAT):
            left = await self._client.pttl(self.mark)
        if left is not None and left > 0:
            self.heard(left / 1000)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 2.0)
            self._task = None
        self.listening = False


def _window(data: Any) -> float:
    try:
        return max(0.0, float(data))
    except (TypeError, ValueError):
        return 3600.0  # a message we cannot read still means a hit: be conservative


class SignalledRedisStorage(RedisStorage):
    """``limits``' Redis storage (redis-py, on the given ``connection_pool``) whose hits
    are announced on ``hits_channel`` (module docstring)."""

    STORAGE_SCHEME = ["tessera+redis"]

    def __init__(self, uri: str, *, hits_channel: str, **options: Any) -> None:
        super().__init__(uri, **options)
        import redis.asyncio as aioredis

        client = aioredis.Redis(connection_pool=options["connection_pool"])
        self.listener = HitListener(client, hits_channel, f"{hits_channel}:mark")

    def nothing_recorded(self) -> bool:
        """``LimitsThrottle.blocked``'s fast path: no hit's window open anywhere."""
        return self.listener.quiet()

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1
                            ) -> bool:
        await self.listener.announce(expiry)
        return await super().acquire_entry(key, limit, expiry, amount)
