"""One reading of a Redis URL for every Redis client Tessera opens (the revocation stream,
the DPoP replay cache, the throttles), so a deployment names its Redis once, as deployed:

==================================================  ===========================================
URL                                                 what it connects to
==================================================  ===========================================
``redis://[user:password@]host:6379/0``             one node; ACL user and password in the URL
``rediss://user:password@host:6380/0?ssl_ca_certs=  the same over TLS; ``ssl_ca_certs``,
/etc/ca.pem``                                       ``ssl_certfile``/``ssl_keyfile`` (client
                                                    certificate), ``ssl_cert_reqs`` as redis-py
                                                    reads them
``unix:///run/redis.sock?db=0``                     a local socket
``redis+sentinel://[user:password@]s1:26379,        the master of service ``mymaster`` as the
s2:26379/mymaster/0``                               Sentinels name it (asked again after a
                                                    failover); ``rediss+sentinel://`` for TLS to
                                                    the Sentinels and the master;
                                                    ``?sentinel_password=…`` when the Sentinels
                                                    have a password of their own
``redis+cluster://[user:password@]n1:6379``         a Redis Cluster (``rediss+cluster://`` for
                                                    TLS); every key that a script touches with
                                                    another carries the same hash tag
                                                    (``{tessera}:revocations``)
==================================================  ===========================================

Passwords are percent-encoded in the URL (``%40`` for ``@``). ``describe`` gives the URL
without its password, for logs and errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

__all__ = ["HASH_TAG", "RedisTarget", "RedisUrlError", "connect", "describe", "hash_slot_tag",
           "limits_storage", "parse"]

HASH_TAG: Final = "{tessera}"
"""The hash tag the documentation uses for the stream and its companion keys on a Cluster."""

_SENTINEL_SCHEMES: Final = {"redis+sentinel": False, "rediss+sentinel": True}
_CLUSTER_SCHEMES: Final = {"redis+cluster": False, "rediss+cluster": True}
_PLAIN_SCHEMES: Final = ("redis", "rediss", "unix")
_TAG = re.compile(r"\{([^{}]+)\}")


class RedisUrlError(ValueError):
    """A Redis URL Tessera cannot use; the message says what to write instead."""


@dataclass(frozen=True)
class RedisTarget:
    """A parsed URL: ``mode`` is ``single``, ``sentinel`` or ``cluster``."""

    mode: str
    url: str
    """For ``single`` and ``cluster``: the URL redis-py reads (scheme ``redis``/``rediss``)."""
    tls: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    options: dict[str, str] = field(default_factory=dict)


def describe(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe for logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def parse(url: str) -> RedisTarget:
    """Read ``url`` (table in the module docstring) or raise ``RedisUrlError``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _PLAIN_SCHEMES:
        return RedisTarget("single", url, tls=scheme == "rediss")
    if scheme in _CLUSTER_SCHEMES:
        tls = _CLUSTER_SCHEMES[scheme]
        plain = urlunsplit(parts._replace(scheme="rediss" if tls else "redis"))
        return RedisTarget("cluster", plain, tls=tls)
    if scheme not in _SENTINEL_SCHEMES:
        raise RedisUrlError(
            f"unsupported Redis URL scheme {parts.scheme!r}: use redis://, rediss://, "
            "unix://, redis+sentinel:// or redis+cluster:// (rediss+… for TLS)")
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "26379")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise RedisUrlError(f"Sentinel address {item!r} in {describe(url)} is not host:port")
        sentinels.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise RedisUrlError(f"{describe(url)} names no service: write "
                            "redis+sentinel://host:26379/SERVICE_NAME[/DB]")
    db = 0
    if len(path) > 1:
        if not path[1].isdigit():
            raise RedisUrlError(f"database {path[1]!r} in {describe(url)} is not a number")
        db = int(path[1])
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return RedisTarget(
        "sentinel", url, tls=_SENTINEL_SCHEMES[scheme], sentinels=tuple(sentinels),
        service=unquote(path[0]), db=db,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sentinel_password=query.pop("sentinel_password", None), options=query)


def hash_slot_tag(key: str) -> str | None:
    """The part of ``key`` Redis Cluster hashes (its first ``{…}``), or None."""
    found = _TAG.search(key)
    return found.group(1) if found else None


def _tls_options(options: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"ssl": True}
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"):
        if name in options:
            out[name] = options[name]
    if "ssl_check_hostname" in options:
        out["ssl_check_hostname"] = options["ssl_check_hostname"].lower() in ("1", "true", "yes")
    return out


def connect(url: str, **kwargs: Any) -> Any:
    """A redis-py asyncio client for ``url``: ``Redis`` (single node, or the Sentinels'
    current master: each new connection asks them, so a failover is followed on the next
    reconnect) or ``RedisCluster``. ``kwargs`` (timeouts, ``decode_responses``) go to every
    connection."""
    import redis.asyncio as aioredis

    target = parse(url)
    if target.mode == "single":
        return aioredis.Redis.from_url(target.url, **kwargs)
    if target.mode == "cluster":
        from redis.asyncio.cluster import RedisCluster

        kwargs.pop("health_check_interval", None)
        return RedisCluster.from_url(target.url, **kwargs)
    from redis.asyncio.sentinel import Sentinel

    tls = _tls_options(target.options) if target.tls else {}
    sentinel_kwargs: dict[str, Any] = dict(tls)
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in kwargs:
            sentinel_kwargs[name] = kwargs[name]
    if target.sentinel_password is not None:
        sentinel_kwargs["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs,
                        username=target.username, password=target.password, db=target.db,
                        **tls, **kwargs)

    class SentinelMaster(aioredis.Redis):
        """The master's client; closing it also closes the connections to the Sentinels."""

        async def aclose(self, close_connection_pool: bool | None = None) -> None:
            await super().aclose(close_connection_pool)
            for client in sentinel.sentinels:
                await client.aclose()

    return sentinel.master_for(target.service, redis_class=SentinelMaster)


def limits_storage(url: str, *, storage_class: type | None = None, timeout: float = 2.0,
                   **options: Any) -> tuple[Any, Any]:
    """A ``limits`` async storage for ``url`` (the throttles' moving windows) and the
    client whose connections it uses (to close). Single node and Sentinel share redis-py's
    connection pool, in a ``storage_class`` (default ``RedisStorage``); a Cluster gets
    limits' own cluster storage. ``timeout`` bounds connecting and each reply: a silent
    partition fails the check (the throttles then count in memory) instead of holding
    every client authentication for as long as it lasts."""
    from limits.aio.storage import RedisClusterStorage, RedisStorage

    target = parse(url)
    client = connect(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    if target.mode == "cluster":
        if target.tls:
            options = {**options, "ssl": True}
        storage: Any = RedisClusterStorage("async+redis+cluster://" + url.split("://", 1)[1],
                                           implementation="redispy", **options)
        return storage, client
    storage = (storage_class or RedisStorage)(
        "async+redis://", implementation="redispy", connection_pool=client.connection_pool,
        **options)
    return storage, client
