"""Reference (opaque) access tokens (DESIGN §2): a random handle that stands for the
claims a JWT access token would carry, kept server side and valid only through
introspection (RFC 7662) and the identity service's own endpoints.

The handle is 256 random bits (``secrets``), stored only as its SHA-256 (DESIGN §9),
together with the claims, ``jti``, ``sid`` and expiry, so everything that ends a JWT
ends a reference too: a revoked ``jti``, session, refresh family, user, client or tenant
(``token_state`` applies the same checks to both).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from tessera.core.secrets import token_hash
from tessera.protocol.rfc9068.token import Reason, TokenRejected, VerifiedToken, parse_claims
from tessera.protocol.rfc9068.validator import Expectations, check_claims
from tessera.store.ports import ReferenceToken, Store

__all__ = ["REFERENCE_TOKEN_BYTES", "ReferenceTokens", "looks_like_jwt"]

REFERENCE_TOKEN_BYTES = 32
REFERENCE_KID = "reference"
"""``kid`` and ``alg`` of a ``VerifiedToken`` that stands for a reference (no JWS)."""


def looks_like_jwt(token: str) -> bool:
    """A compact JWS has exactly three dot-separated parts; a reference has none."""
    return token.count(".") == 2


class ReferenceTokens:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def mint(self, claims: dict[str, Any]) -> str:
        """A new handle for ``claims`` (rendered JWT claims: ``jti``, ``exp`` required)."""
        handle = secrets.token_urlsafe(REFERENCE_TOKEN_BYTES)
        sid = claims.get("sid")
        async with self._store.unit_of_work() as uow:
            await uow.reference_tokens.add(ReferenceToken(
                token_hash=token_hash(handle), jti=str(claims["jti"]),
                client_id=str(claims["client_id"]), tenant_id=claims.get("tid"),
                sid=str(sid) if sid is not None else None, claims=dict(claims),
                expires_at=float(claims["exp"])))
        return handle

    async def resolve(self, handle: str, *, expect: Expectations,
                      now: float) -> VerifiedToken:
        """The token a live handle stands for, checked like a JWT's (``validator
        .check_claims``: ``iss``, ``aud`` when expected, times). Raises ``TokenRejected``;
        revocation is the caller's."""
        if not handle or len(handle) > 512:
            raise TokenRejected(Reason.MALFORMED, "not a reference token")
        digest = token_hash(handle)
        async with self._store.unit_of_work(read_only=True) as uow:
            row = await uow.reference_tokens.get(digest)
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise TokenRejected(Reason.MALFORMED, "no such reference token")
        verified = parse_claims(dict(row.claims), kid=REFERENCE_KID, alg=REFERENCE_KID)
        check_claims(verified, expect, now)
        return verified
