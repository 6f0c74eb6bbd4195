"""Verified-token cache: skip signature verification and JSON decoding on repeat use.

A signature result never changes, so a token string that verified once may skip that
work next time. Only that: expiry, issuer, audience, scopes, revocation, session
version and staleness are checked on every call, and an entry is used only while the
key that verified it is still the one its ``kid`` names (a key rotation or retirement
makes every entry of the old key a miss). The SDK (``verify_access_token``) and the
identity service (introspection, userinfo, exchange: ``AccessTokenIssuer``) use it alike.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from tessera.jose import VerificationKey
from tessera.protocol.rfc9068.token import VerifiedToken
from tessera.protocol.rfc9068.validator import KeyLookup, verify_signed

__all__ = ["BoundedLru", "VerifiedTokenCache", "verify_signed_cached"]

V = TypeVar("V")


class BoundedLru(Generic[V]):
    """A bounded LRU map from token strings: ``put`` evicts the least recently used entry
    past ``maxsize``; readers call ``touch`` on a hit. Shared by the verified-token cache
    and the reference-token cache (``_reference``)."""

    __slots__ = ("_entries", "_maxsize")

    def __init__(self, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._entries: OrderedDict[str, V] = OrderedDict()

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def peek(self, token: str) -> V | None:
        return self._entries.get(token)

    def touch(self, token: str) -> None:
        self._entries.move_to_end(token)

    def put(self, token: str, value: V) -> str | None:
        """Remember ``value``; returns the token evicted to make room, if one was."""
        entries = self._entries
        entries[token] = value
        entries.move_to_end(token)
        if len(entries) > self._maxsize:
            evicted, _ = entries.popitem(last=False)
            return evicted
        return None

    def discard(self, token: str) -> None:
        self._entries.pop(token, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class VerifiedTokenCache(BoundedLru[tuple[VerifiedToken, VerificationKey]]):
    """Token string → (``VerifiedToken``, the key that verified it); and, for a caller
    whose revocation state has generations (the SDK's ``RevocationState``), the
    generation at which the token last passed the revocation check: at the same
    generation the state is unchanged but for forgotten entries, so the check would pass
    again (``revocation_passed`` / ``pass_revocation``)."""

    __slots__ = ("_passed", "hits", "misses")

    def __init__(self, maxsize: int = 4096) -> None:
        super().__init__(maxsize)
        self.hits = 0
        self.misses = 0
        self._passed: dict[str, int] = {}

    def put(self, token: str, value: tuple[VerifiedToken, VerificationKey]) -> str | None:
        evicted = super().put(token, value)
        if evicted is not None:
            self._passed.pop(evicted, None)
        return evicted

    def discard(self, token: str) -> None:
        super().discard(token)
        self._passed.pop(token, None)

    def clear(self) -> None:
        super().clear()
        self._passed.clear()

    def revocation_passed(self, token: str) -> int | None:
        """The generation at which ``token`` last passed the revocation check."""
        return self._passed.get(token)

    def pass_revocation(self, token: str, generation: int) -> None:
        """``token`` (an entry) passed the revocation check at ``generation``."""
        if token in self._entries:
            self._passed[token] = generation

    def get(self, token: str) -> tuple[VerifiedToken, VerificationKey] | None:
        entry = self._entries.get(token)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(token)
        self.hits += 1
        return entry


def verify_signed_cached(token: str, keys: KeyLookup, cache: VerifiedTokenCache | None
                         ) -> tuple[VerifiedToken, VerificationKey | None]:
    """``validator.verify_signed``, answered from ``cache`` when this exact token string
    verified before with the key its ``kid`` still names. Returns the token and, when it
    was verified now (a miss), the key: the caller remembers it with ``cache.put`` once
    every other check passed, so a refused token never takes a place in the cache.
    Raises ``TokenRejected``."""
    if cache is not None:
        entry = cache.get(token)
        if entry is not None:
            verified, key = entry
            if keys.get(verified.kid) is key:
                return verified, None
            cache.discard(token)
    return verify_signed(token, keys)
