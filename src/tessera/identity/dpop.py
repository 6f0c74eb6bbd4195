"""Wiring of DPoP (RFC 9449) for the identity service: one ``ProofChecker`` shared by the
token and userinfo endpoints, its replay cache on Redis when the service has one (every
worker sees every proof), in process otherwise, and nonces keyed from the KEK (every
worker accepts every other's)."""

from __future__ import annotations

from tessera.core.clock import Clock
from tessera.protocol.rfc9449 import MemoryReplayCache, NonceIssuer, ProofChecker, ReplayCache
from tessera.settings import Settings

__all__ = ["build_proof_checker"]


def build_proof_checker(settings: Settings, clock: Clock, *,
                        nonce_key: bytes) -> ProofChecker | None:
    """The checker, or None when ``dpop.enabled`` is off."""
    dpop = settings.dpop
    if not dpop.enabled:
        return None
    replay: ReplayCache
    if settings.bus.redis_url:
        from tessera.verifier.replay import RedisReplayCache

        replay = RedisReplayCache.from_url(settings.bus.redis_url)
    else:
        replay = MemoryReplayCache(dpop.replay_cache_size)
    return ProofChecker(replay, clock, algorithms=dpop.algorithms, window=dpop.proof_window,
                        nonces=NonceIssuer(nonce_key, lifetime=dpop.nonce_lifetime),
                        require_nonce=dpop.require_nonce)
