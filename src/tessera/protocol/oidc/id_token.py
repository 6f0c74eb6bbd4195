"""ID Tokens — OIDC Core §2, §3.1.3.6 (at_hash)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from tessera.keys import RingHolder

__all__ = ["ID_TOKEN_TYP", "IdTokenIssuer", "at_hash"]

ID_TOKEN_TYP = "JWT"


def at_hash(access_token: str) -> str:
    """Left half of SHA-256 of the access token (RS256/ES256/EdDSA over SHA-256/512:
    we use SHA-256 for all algorithms of 256-bit strength; EdDSA uses SHA-512 per the
    OIDC errata, handled by the caller's algorithm)."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def _at_hash_for(alg: str, access_token: str) -> str:
    if alg == "EdDSA":
        digest = hashlib.sha512(access_token.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest[:32]).rstrip(b"=").decode("ascii")
    return at_hash(access_token)


class IdTokenIssuer:
    def __init__(self, keys: RingHolder, *, issuer: str, ttl: int,
                 alg: str | None = None) -> None:
        """``alg``: the ID token algorithm (``keys.id_token_algorithm``); the ring's
        primary one when None or when the ring holds no active key of it."""
        self._keys = keys
        self.issuer = issuer
        self.ttl = ttl
        self.alg = alg

    def sign(self, *, sub: str, client_id: str, now: int, auth_time: float, sid: str,
             acr: str, amr: tuple[str, ...], nonce: str | None,
             access_token: str | None, extra: dict[str, Any] | None = None) -> str:
        """``extra``: end-user claims (a federated user's normalised profile); they never
        replace a registered claim."""
        claims: dict[str, Any] = dict(extra or {})
        claims |= {
            "iss": self.issuer, "sub": sub, "aud": client_id, "exp": now + self.ttl,
            "iat": now, "auth_time": int(auth_time), "sid": sid, "acr": acr,
            "amr": list(amr), "azp": client_id,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        ring = self._keys.ring
        if access_token is not None:
            claims["at_hash"] = _at_hash_for(ring.active_for(self.alg).alg, access_token)
        return ring.sign(claims, typ=ID_TOKEN_TYP, alg=self.alg)

    def verify_hint(self, token: str, *, now: float, leeway: float) -> dict[str, Any]:
        """Verify an ``id_token_hint`` (RP-initiated logout): expired hints are accepted
        (OIDC RP-Initiated Logout §2), the signature, issuer and ``typ`` are not optional:
        our access tokens share the key and issuer, and only their ``typ: at+jwt`` tells
        them apart (RFC 8725 §3.11), so one must never pass for an ID token."""
        return self._keys.ring.verify(token, typ=ID_TOKEN_TYP, issuer=self.issuer,
                                      audience=None, now=now, leeway=leeway, verify_exp=False)
