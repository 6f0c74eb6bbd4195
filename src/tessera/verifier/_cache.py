"""Verified-token cache: skip signature verification and JSON decoding on repeat use.

A signature result never changes, so a token string that verified once may skip that
work next time. Only that: expiry, issuer, audience, scopes, revocation, session
version and staleness are checked on every call, and an entry is used only while the
key that verified it is still the one its ``kid`` names.
"""

from __future__ import annotations

from collections import OrderedDict

from tessera.verifier._keyset import VerificationKey
from tessera.verifier._token import VerifiedToken

__all__ = ["VerifiedTokenCache"]


class VerifiedTokenCache:
    """A bounded LRU map: token string → (``VerifiedToken``, the key that verified it)."""

    __slots__ = ("_entries", "_maxsize", "hits", "misses")

    def __init__(self, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._maxsize = maxsize
        self._entries: OrderedDict[str, tuple[VerifiedToken, VerificationKey]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def get(self, token: str) -> tuple[VerifiedToken, VerificationKey] | None:
        entry = self._entries.get(token)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(token)
        self.hits += 1
        return entry

    def put(self, token: str, verified: VerifiedToken, key: VerificationKey) -> None:
        entries = self._entries
        entries[token] = (verified, key)
        entries.move_to_end(token)
        if len(entries) > self._maxsize:
            entries.popitem(last=False)

    def discard(self, token: str) -> None:
        self._entries.pop(token, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
