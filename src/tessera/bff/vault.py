"""Where the BFF keeps login transactions and sessions: sealed, server side.

Every value is JSON sealed with AES-256-GCM (``tessera.keys.Sealer``, cryptography's
AEAD) under a key derived from ``TESSERA_BFF_SECRET_KEY``, with the storage key as
associated data, so a value copied onto another key does not open. Storage keys are
SHA-256 hashes of the browser's random handles: a dump of the store holds neither a
usable cookie nor a readable token.

``Vault`` is the port (a small Protocol); ``RedisVault`` (shared by replicas, TTLs in
Redis) and ``MemoryVault`` (one process, development and tests) are its adapters.
``take`` is atomic: a login transaction is used at most once, even by concurrent
callbacks (Redis ``GETDEL``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

import orjson

from tessera.core.clock import Clock
from tessera.core.secrets import token_hash
from tessera.keys import Sealer
from tessera.keys.errors import KeyError_

__all__ = ["BffSession", "LoginTransaction", "MemoryVault", "RedisVault", "SealedVault",
           "Vault", "VaultUnavailable"]

_T = TypeVar("_T")


class VaultUnavailable(Exception):
    """The session store could not be reached (the request is answered 503)."""


@dataclass(slots=True)
class LoginTransaction:
    """What ``/bff/login`` remembers for ``/bff/callback`` (RFC 6749 §10.12, RFC 7636,
    OIDC Core §3.1.2.1 ``nonce``)."""

    state: str
    nonce: str
    code_verifier: str
    return_to: str
    created_at: float


@dataclass(slots=True)
class BffSession:
    """One browser's login: the tokens never leave the server."""

    sub: str
    sid: str | None
    """The identity service's session id (the ID token's ``sid``)."""
    id_token: str
    access_token: str
    refresh_token: str | None
    token_type: str
    expires_at: float
    scope: str
    claims: dict[str, Any]
    """Non-sensitive ID token claims the SPA may see (``/bff/session``)."""
    created_at: float
    absolute_expiry: float
    dpop_jwk: dict[str, Any] | None = None
    """The session's private DPoP key (JWK), when tokens are DPoP-bound."""
    checked_at: float = 0.0
    """When introspection last said the access token is active."""
    extra: dict[str, Any] = field(default_factory=dict)


class Vault(Protocol):
    """Opaque byte values under string keys, each with a lifetime."""

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store (replace) ``value``; it disappears after ``ttl`` seconds."""

    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def take(self, key: str) -> bytes | None:
        """Get and delete in one atomic step: of concurrent callers, one gets it."""

    async def delete(self, key: str) -> None:
        """Remove; absent is fine."""

    async def aclose(self) -> None: ...


class MemoryVault:
    """In this process only: development and tests (lost on restart). Expiry follows
    ``clock`` when given (the app's), else the monotonic clock."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._items: dict[str, tuple[bytes, float]] = {}
        self._now = clock.now if clock is not None else time.monotonic

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        self._prune()
        self._items[key] = (value, self._now() + ttl)

    async def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None or item[1] <= self._now():
            self._items.pop(key, None)
            return None
        return item[0]

    async def take(self, key: str) -> bytes | None:
        value = await self.get(key)
        self._items.pop(key, None)
        return value

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)

    async def aclose(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def _prune(self) -> None:
        now = self._now()
        for key in [k for k, (_, expiry) in self._items.items() if expiry <= now]:
            del self._items[key]


class RedisVault:
    """Redis (redis-py asyncio): shared by every replica, expiry by Redis TTLs."""

    def __init__(self, url: str, *, prefix: str = "tessera:bff:") -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url, socket_timeout=2.0,
                                          socket_connect_timeout=2.0)
        self._prefix = prefix

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        await self._call("set", self._prefix + key, value, px=max(1, int(ttl * 1000)))

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", self._prefix + key)
        return bytes(value) if value is not None else None

    async def take(self, key: str) -> bytes | None:
        value = await self._call("getdel", self._prefix + key)
        return bytes(value) if value is not None else None

    async def delete(self, key: str) -> None:
        await self._call("delete", self._prefix + key)

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await getattr(self._redis, name)(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise VaultUnavailable(f"redis: {type(exc).__name__}") from None


class SealedVault:
    """Typed records over a ``Vault``, sealed (AES-256-GCM) and keyed by handle hashes."""

    def __init__(self, vault: Vault, sealer: Sealer) -> None:
        self.vault = vault
        self._sealer = sealer

    @staticmethod
    def session_key(handle: str) -> str:
        return "session:" + token_hash(handle)

    @staticmethod
    def login_key(handle: str) -> str:
        return "login:" + token_hash(handle)

    async def put_session(self, handle: str, session: BffSession, ttl: float) -> None:
        await self._put(self.session_key(handle), asdict(session), ttl)

    async def get_session(self, handle: str) -> BffSession | None:
        data = self._open(self.session_key(handle),
                          await self.vault.get(self.session_key(handle)))
        return _build(BffSession, data)

    async def delete_session(self, handle: str) -> None:
        await self.vault.delete(self.session_key(handle))

    async def put_login(self, handle: str, login: LoginTransaction, ttl: float) -> None:
        await self._put(self.login_key(handle), asdict(login), ttl)

    async def take_login(self, handle: str) -> LoginTransaction | None:
        data = self._open(self.login_key(handle), await self.vault.take(self.login_key(handle)))
        return _build(LoginTransaction, data)

    async def _put(self, key: str, data: dict[str, Any], ttl: float) -> None:
        sealed = self._sealer.seal(orjson.dumps(data), context=f"tessera-bff/{key}")
        await self.vault.put(key, sealed.encode("ascii"), ttl)

    def _open(self, key: str, value: bytes | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            data = orjson.loads(self._sealer.open(value.decode("ascii"),
                                                  context=f"tessera-bff/{key}"))
        except (KeyError_, UnicodeDecodeError, orjson.JSONDecodeError):
            return None  # another key, a tampered value: as if absent
        return data if isinstance(data, dict) else None


def _build(kind: type[_T], data: dict[str, Any] | None) -> _T | None:
    if data is None:
        return None
    try:
        return kind(**data)
    except TypeError:
        return None  # written by an incompatible version: as if absent
