"""``RedisSeenEnvelopes``: envelope de-duplication shared by every replica of a consumer.

``EnvelopeVerifier`` remembers each accepted envelope (publisher, ``jti``) with the hash of
its body until it could no longer be accepted anyway (``exp`` + leeway). In memory that
holds for one process; a consumer scaled to several replicas behind one queue passes
``seen=RedisSeenEnvelopes.from_url(...)`` so a second delivery to *another* replica is
recognised too (and refused with ``reject_duplicates``).

One ``SET key msg NX PX ttl`` per envelope, in a script that returns the body hash
already there if the key existed: atomic, so of two replicas receiving the same envelope
at once exactly one sees it first. ``verify`` stays synchronous: this is one round trip on
a synchronous client with a short timeout. Redis unreachable or slow denies the envelope
with ``stale_state`` (``retryable``: leave the message un-acknowledged and retry), never
accepts it unchecked.

Keys: ``<prefix><publisher>\\x00<jti>``; single-key operations only, so the keys spread
over a Redis Cluster's slots.
"""

from __future__ import annotations

import math
from typing import Any, Final

from tessera import _extras
from tessera.verifier.envelope.claims import EnvelopeDenied
from tessera.verifier.errors import Reason

__all__ = ["DEFAULT_PREFIX", "RedisSeenEnvelopes"]

DEFAULT_PREFIX: Final = "tessera:envelope:seen:"

_CLAIM: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
"""


class RedisSeenEnvelopes:
    """The ``seen`` store of ``EnvelopeVerifier`` on Redis (module docstring)."""

    def __init__(self, client: Any, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = client
        self._prefix = prefix
        self._claim = client.register_script(_CLAIM)
        self._sentinels: list[Any] = []

    @classmethod
    def from_url(cls, url: str, *, prefix: str = DEFAULT_PREFIX,
                 timeout: float = 0.5) -> RedisSeenEnvelopes:
        """A synchronous client for ``url`` (any form ``tessera.bus.redis_url`` reads)."""
        _extras.require("verifier", "RedisSeenEnvelopes")
        import redis

        from tessera.bus.redis_url import parse

        target = parse(url)
        options: dict[str, Any] = {"socket_connect_timeout": timeout,
                                   "socket_timeout": timeout}
        client: Any
        if target.mode == "single":
            client = redis.Redis.from_url(target.url, **options)
        elif target.mode == "cluster":
            client = redis.RedisCluster.from_url(target.url, **options)
        else:
            from redis.sentinel import Sentinel

            tls: dict[str, Any] = {"ssl": True} if target.tls else {}
            for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
                if target.tls and name in target.options:
                    tls[name] = target.options[name]
            sentinel_kwargs = dict(tls, **options)
            if target.sentinel_password is not None:
                sentinel_kwargs["password"] = target.sentinel_password
            sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs,
                                username=target.username, password=target.password,
                                db=target.db, **tls, **options)
            client = sentinel.master_for(target.service)
            store = cls(client, prefix=prefix)
            store._sentinels = list(sentinel.sentinels)
            return store
        return cls(client, prefix=prefix)

    def claim(self, key: tuple[str, str], msg: str, keep_until: float,
              now: float) -> str | None:
        """Remember ``key`` with ``msg`` until ``keep_until`` unless it is remembered
        already; the body hash remembered before, or None if this is the first time."""
        from redis.exceptions import RedisError

        ttl_ms = max(1, math.ceil((keep_until - now) * 1000))
        try:
            before = self._claim(keys=[f"{self._prefix}{key[0]}\x00{key[1]}"],
                                 args=[msg, ttl_ms])
        except (RedisError, OSError, TimeoutError) as exc:
            raise EnvelopeDenied(Reason.STALE_STATE, "envelope de-duplication store "
                                 f"unreachable (redis: {type(exc).__name__})") from None
        if before is None:
            return None
        return before.decode() if isinstance(before, bytes) else str(before)

    def close(self) -> None:
        self._redis.close()
        for client in self._sentinels:
            client.close()
