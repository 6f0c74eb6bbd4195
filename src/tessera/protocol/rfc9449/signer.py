"""The client half of DPoP (RFC 9449 §4.2): a key pair and the proofs it signs.

``tessera.jose.ProofKey`` generates the key, signs the proof JWS and computes the RFC 7638
thumbprint; nothing here touches JOSE by hand. ES256 (P-256), the algorithm every server supports.
A signer is rebuilt from its private JWK (``from_jwk``), so a backend-for-frontend can
keep one key per session in its sealed store.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any, Final

from tessera.jose import ProofKey
from tessera.protocol.rfc9449.proof import DPOP_TYP, access_token_hash

__all__ = ["ProofSigner"]

_ALG: Final = "ES256"


class ProofSigner:
    """Signs DPoP proofs with one ES256 key."""

    def __init__(self, key: ProofKey) -> None:
        private = key.private_jwk()
        if private.get("crv") != "P-256" or "d" not in private:
            raise ValueError("a DPoP signer needs a private P-256 key")
        self._key = key
        self.public_jwk: dict[str, Any] = key.public_jwk

    @classmethod
    def generate(cls) -> ProofSigner:
        return cls(ProofKey.generate())

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> ProofSigner:
        return cls(ProofKey.import_jwk(jwk))

    def private_jwk(self) -> dict[str, Any]:
        return self._key.private_jwk()

    @property
    def jkt(self) -> str:
        """RFC 7638 thumbprint: the ``cnf.jkt`` of tokens bound to this key."""
        return self._key.thumbprint

    def proof(self, method: str, url: str, *, now: float, access_token: str | None = None,
              nonce: str | None = None) -> str:
        """A proof for one request: ``htu`` is ``url`` without query and fragment (§4.2);
        ``ath`` when presenting ``access_token``; the server's ``nonce`` when it asked."""
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method.upper(),
                                  "htu": url.split("?", 1)[0].split("#", 1)[0],
                                  "iat": int(now)}
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        return self._key.sign(claims, typ=DPOP_TYP)
