"""JWKS cache: fetch ``{issuer}/jwks`` with httpx, keep it, refetch sparingly (DESIGN §5).

- First use fetches; afterwards the set is refetched when older than ``max_age``.
- An unknown ``kid`` triggers a refetch at most once per ``min_refetch_interval``
  (attempts count, successful or not), so junk kids cannot hammer the issuer.
- A failed fetch keeps the keys already known; only with none at all does ``get`` raise
  ``KeysUnavailable``.
- Concurrent callers share one fetch (an ``asyncio.Lock``); a periodic refresh never
  makes a request wait when keys are already known.
"""

from __future__ import annotations

import asyncio
from typing import Final

import httpx
import orjson

from tessera.core.clock import Clock
from tessera.verifier._keyset import KeySet
from tessera.verifier.errors import InvalidJwks, KeysUnavailable

__all__ = ["JwksCache"]

_MAX_JWKS_BYTES: Final = 256 * 1024


class JwksCache:
    """Keys of one issuer, fetched over HTTP. The clock and transport are injected."""

    def __init__(
        self,
        issuer: str,
        *,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        jwks_uri: str | None = None,
        max_age: float = 300.0,
        min_refetch_interval: float = 10.0,
        announce_interval: float = 0.25,
        expect_timeout: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        self.jwks_uri = jwks_uri or issuer.rstrip("/") + "/jwks"
        self._clock = clock
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout)
        self._max_age = max_age
        self._min_interval = min_refetch_interval
        self._lock = asyncio.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._invalidated = False
        self._expected: str | None = None
        self._expected_since = 0.0
        self._announce_interval = announce_interval
        self._expect_timeout = expect_timeout
        self.fetches = 0
        """Fetch attempts made (for metrics)."""
        self.failures = 0
        """Fetch attempts that failed (for metrics)."""
        self.last_error: Exception | None = None

    @property
    def keys(self) -> KeySet | None:
        """The current key set, without any I/O (``None`` before the first fetch)."""
        return self._keys

    async def get(self) -> KeySet:
        """The current keys, fetched first if missing, too old or invalidated.

        Every fetch attempt is rate-limited, including while no keys are known, so an
        unreachable issuer is not hit by every request. While a refresh is in flight,
        callers keep using the keys already known instead of waiting for it.
        """
        keys = self._keys
        if keys is not None and (self._lock.locked() or not self._is_due(self._clock.now())):
            return keys
        async with self._lock:
            now = self._clock.now()
            if self._is_due(now) and self._may_attempt(now):
                await self._fetch(now)
            if self._keys is None:
                raise KeysUnavailable(f"no keys from {self.jwks_uri}: {self.last_error}")
            return self._keys

    async def refetch_for_unknown_kid(self, seen: KeySet) -> KeySet:
        """After ``seen`` lacked a kid: a newer set if one exists or may be fetched now,
        else ``seen`` itself (rate-limited)."""
        async with self._lock:
            current = self._keys
            if current is not None and current is not seen:
                return current
            now = self._clock.now()
            if self._may_attempt(now):
                await self._fetch(now)
            return self._keys if self._keys is not None else seen

    def invalidate(self) -> None:
        """Refetch on the next ``get`` (rate-limited): e.g. after a ``key.rotated`` event."""
        self._invalidated = True

    def expect(self, kid: str) -> None:
        """The bus announced ``kid`` as the new signing key: refetch until the JWKS has it.
        A trusted signal, not request input, so it retries every ``announce_interval``
        instead of the unknown-kid rate limit (the issuer's workers may publish it a
        moment after the announcement), for at most ``expect_timeout`` seconds."""
        if self._keys is not None and kid in self._keys:
            return
        self._expected = kid
        self._expected_since = self._clock.now()

    async def aclose(self) -> None:
        await self._client.aclose()

    def _is_due(self, now: float) -> bool:
        return (self._keys is None or self._invalidated or self._awaiting(now)
                or now - self._fetched_at >= self._max_age)

    def _awaiting(self, now: float) -> bool:
        if self._expected is None:
            return False
        if now - self._expected_since > self._expect_timeout:
            self._expected = None
            return False
        return True

    def _may_attempt(self, now: float) -> bool:
        interval = self._announce_interval if self._awaiting(now) else self._min_interval
        return now - self._attempted_at >= interval

    async def _fetch(self, now: float) -> None:
        self._attempted_at = now
        self.fetches += 1
        try:
            response = await self._client.get(
                self.jwks_uri, headers={"Accept": "application/json"}
            )
            response.raise_for_status()
            if len(response.content) > _MAX_JWKS_BYTES:
                raise InvalidJwks("JWKS document too large")
            keys = KeySet.from_jwks(orjson.loads(response.content), previous=self._keys)
            if not len(keys):
                raise InvalidJwks(f"no usable keys (rejected: {keys.rejected!r})")
        except (httpx.HTTPError, orjson.JSONDecodeError, InvalidJwks) as exc:
            self.failures += 1
            self.last_error = exc
            return
        self._keys = keys
        self._fetched_at = now
        self._invalidated = False
        if self._expected is not None and self._expected in keys:
            self._expected = None
        self.last_error = None
