"""Replay detection — RFC 9449 §11.1: a proof's ``jti`` is accepted once within the time
the proof itself is acceptable.

``ReplayCache`` is the port; ``MemoryReplayCache`` the bounded in-process default
(embedded mode, one process). A shared implementation on Redis (``SET key NX EX``) is
``tessera.verifier.RedisReplayCache``, for several workers or replicas.
"""

from __future__ import annotations

import hashlib
from typing import Final, Protocol

from tessera.protocol.rfc9449.errors import ReplayCacheUnavailable
from tessera.protocol.rfc9449.proof import DPoPProof

__all__ = ["MemoryReplayCache", "ReplayCache", "replay_key"]

DEFAULT_MAX_ENTRIES: Final = 100_000


def replay_key(proof: DPoPProof) -> str:
    """The cache key of a proof: its ``jti`` scoped to its key (one client's choice of
    ``jti`` never blocks another's), hashed to a fixed length."""
    return hashlib.sha256(f"{proof.jkt}\x00{proof.jti}".encode()).hexdigest()


class ReplayCache(Protocol):
    async def first_use(self, key: str, *, ttl: float, now: float) -> bool:
        """Record ``key`` for ``ttl`` seconds. True if it was not recorded (and live)
        before; False on a repeat. Atomic: of concurrent callers with one key exactly
        one sees True. Raises ``ReplayCacheUnavailable`` when it cannot answer."""

    async def aclose(self) -> None: ...


class MemoryReplayCache:
    """In-process, bounded. When every slot holds a live entry it refuses new proofs
    (``ReplayCacheUnavailable``) rather than forget one that could then be replayed."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._expiry: dict[str, float] = {}
        self._no_sweep_before = 0.0

    def __len__(self) -> int:
        return len(self._expiry)

    async def first_use(self, key: str, *, ttl: float, now: float) -> bool:
        expiry = self._expiry.get(key)
        if expiry is not None and expiry > now:
            return False
        if expiry is None and len(self._expiry) >= self._max:
            if now >= self._no_sweep_before:
                self._prune(now)
            if len(self._expiry) >= self._max:
                # nothing expires before the soonest entry: no sweep until then
                self._no_sweep_before = min(self._expiry.values())
                raise ReplayCacheUnavailable("replay cache full")
        self._expiry.pop(key, None)
        self._expiry[key] = now + ttl
        return True

    def _prune(self, now: float) -> None:
        """Drop expired entries: oldest first (insertion order is close to expiry order,
        every entry living about as long), then a full sweep if that freed nothing."""
        expiry = self._expiry
        for key in list(expiry):
            if expiry[key] > now:
                break
            del expiry[key]
        if len(expiry) >= self._max:
            for key in [k for k, at in expiry.items() if at <= now]:
                del expiry[key]

    def clear(self) -> None:
        self._expiry.clear()

    async def aclose(self) -> None:
        self.clear()
