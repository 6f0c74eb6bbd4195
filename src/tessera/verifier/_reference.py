"""Reference (opaque) access tokens: accepted through introspection (RFC 7662), with a
short cache that the revocation stream invalidates.

RFC 7662: https://www.rfc-editor.org/rfc/rfc7662

A reference token carries nothing a service could check by itself, so the first use asks
the issuer (``IntrospectionClient``). The active answer is parsed exactly like JWT claims
(``parse_claims``) and kept for ``ttl`` seconds (bounded LRU, keyed by the token string).
Every use — a cache hit included — runs the same checks as a JWT: ``iss``, ``aud``,
lifetime, and the local revocation state fed by the bus (revoked ``jti``, session,
session version, family, user, client, tenant). A revocation event therefore refuses a
cached reference token as soon as the verifier applies it, exactly as fast as a revoked
JWT; the ``ttl`` only bounds how long an answer is trusted without the stream. Past the
staleness bound the cache is bypassed and the issuer asked again. An inactive answer is
remembered briefly too (``negative_ttl``) so a flood of made-up tokens does not become a
flood of introspection calls.
"""

from __future__ import annotations

from typing import Final

from tessera.protocol.rfc9068.cache import BoundedLru
from tessera.verifier._claims import check_claims
from tessera.verifier._introspection import IntrospectionClient
from tessera.verifier._policy import VerificationPolicy
from tessera.verifier._token import VerifiedToken, parse_claims
from tessera.verifier.errors import Denied, Reason
from tessera.verifier.revocation.state import RevocationState

__all__ = ["REFERENCE_ALG", "ReferenceTokens", "is_reference_token"]

REFERENCE_ALG: Final = "reference"
"""``VerifiedToken.alg`` of a token accepted through introspection (no JWS was seen)."""
_MAX_LENGTH: Final = 512


def is_reference_token(token: str) -> bool:
    """Not a compact JWS (three dot-separated parts): Tessera's references have no dots."""
    return token.count(".") != 2


class ReferenceTokens:
    __slots__ = ("_entries", "_introspection", "_negative_ttl", "_ttl", "hits", "misses")

    def __init__(self, introspection: IntrospectionClient, *, ttl: float = 30.0,
                 negative_ttl: float = 5.0, maxsize: int = 4096) -> None:
        if maxsize < 1 or ttl < 0 or negative_ttl < 0:
            raise ValueError("maxsize must be positive and the ttls not negative")
        self._introspection = introspection
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._entries: BoundedLru[tuple[float, VerifiedToken | None]] = BoundedLru(maxsize)
        self.hits = 0
        self.misses = 0

    async def verify(self, token: str, *, policy: VerificationPolicy,
                     state: RevocationState, now: float,
                     use_cache: bool = True) -> VerifiedToken:
        """The verified token or ``Denied``; raises ``Unavailable`` when the issuer
        cannot be asked. ``use_cache=False`` asks the issuer whatever is cached (the
        revocation state is stale: only the issuer knows)."""
        if not token or len(token) > _MAX_LENGTH:
            raise Denied(Reason.MALFORMED, "not a reference token")
        if policy.max_staleness is not None and state.is_stale(now, policy.max_staleness):
            use_cache = False  # the stream may have missed a revocation: ask the issuer
        verified = self._cached(token, now) if use_cache else None
        if verified is None:
            verified = await self._ask(token, now)
        check_claims(verified, policy, now)
        state.check(verified)
        return verified

    def _cached(self, token: str, now: float) -> VerifiedToken | None:
        entry = self._entries.peek(token)
        if entry is None:
            self.misses += 1
            return None
        until, verified = entry
        if now >= until:
            self._entries.discard(token)
            self.misses += 1
            return None
        self.hits += 1
        self._entries.touch(token)
        if verified is None:
            raise Denied(Reason.TOKEN_REVOKED, "reference token inactive (cached answer)")
        return verified

    async def _ask(self, token: str, now: float) -> VerifiedToken:
        claims = await self._introspection.introspect(token)
        if claims is None:
            self._put(token, now + self._negative_ttl, None)
            raise Denied(Reason.TOKEN_REVOKED, "introspection: inactive")
        verified = parse_claims(dict(claims), kid=REFERENCE_ALG, alg=REFERENCE_ALG)
        # never trust an answer past the token's own expiry
        self._put(token, min(now + self._ttl, verified.exp), verified)
        return verified

    def _put(self, token: str, until: float, verified: VerifiedToken | None) -> None:
        self._entries.put(token, (until, verified))

    def discard(self, token: str) -> None:
        self._entries.discard(token)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
