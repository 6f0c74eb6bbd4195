"""``RedisReplayCache``: the shared DPoP replay cache (RFC 9449 §11.1) on Redis.

One ``SET key 1 NX EX ttl`` per proof: atomic, so of several workers or replicas seeing
the same proof exactly one accepts it, and Redis forgets the key when the proof could
no longer be accepted anyway. Redis being unreachable or slow refuses the proof
(``ReplayCacheUnavailable``, fail closed); it never lets a replay through.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from tessera import _extras
from tessera.protocol.rfc9449 import ReplayCacheUnavailable

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["DEFAULT_PREFIX", "RedisReplayCache"]

DEFAULT_PREFIX: Final = "tessera:dpop:jti:"


class RedisReplayCache:
    """A ``ReplayCache`` (``tessera.protocol.rfc9449``) shared through Redis."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        # redis-py is imported when a cache is made, so the module imports without it
        # (pip install tessera; the verifier extra brings Redis)
        _extras.require("verifier", "RedisReplayCache")
        from redis.exceptions import RedisError

        self._redis = client
        self._prefix = prefix
        self._errors = (RedisError, OSError, TimeoutError)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX,
                 timeout: float = 0.5) -> RedisReplayCache:
        """A client for ``url``; ``timeout`` bounds each call (the request waits)."""
        _extras.require("verifier", "RedisReplayCache")
        from tessera.bus.redis_url import connect

        client = connect(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return cls(client, prefix=prefix)

    async def first_use(self, key: str, *, ttl: float, now: float) -> bool:
        try:
            created = await self._redis.set(self._prefix + key, b"1", nx=True,
                                            ex=max(1, math.ceil(ttl)))
        except self._errors as exc:
            raise ReplayCacheUnavailable(f"redis: {type(exc).__name__}") from None
        return bool(created)

    async def aclose(self) -> None:
        await self._redis.aclose()
