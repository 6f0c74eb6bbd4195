"""A DPoP client for tests: keys and proofs built with PyJWT (and joserfc), never with the
code under test, so a proof that passes was made the way any RFC 9449 client makes one."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, JWKRegistry
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

__all__ = ["DPoPKey", "ath_of", "joserfc_proof"]

_DROP = object()


def ath_of(token: str) -> str:
    """RFC 9449 §4.2, computed independently of the code under test."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


class DPoPKey:
    """A client key pair and the proofs it signs."""

    DROP = _DROP
    """Pass as a claim value to leave the claim out."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        if alg == "RS256":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            text = RSAAlgorithm.to_jwk(self.private.public_key())
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            text = ECAlgorithm.to_jwk(self.private.public_key())
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()
            text = OKPAlgorithm.to_jwk(self.private.public_key())
        self.jwk: dict[str, Any] = json.loads(text)

    @property
    def jkt(self) -> str:
        """RFC 7638 thumbprint (joserfc)."""
        return JWKRegistry.import_key(self.jwk).thumbprint()

    def proof(self, method: str, url: str, *, iat: Any, access_token: str | None = None,
              nonce: str | None = None, jti: Any = None,
              header: dict[str, Any] | None = None, **claims: Any) -> str:
        """``iat``, ``jti`` and any claim may be ``DROP`` (left out)."""
        body: dict[str, Any] = {"jti": jti or secrets.token_urlsafe(16), "htm": method,
                                "htu": url, "iat": iat if iat is _DROP else int(iat)}
        if access_token is not None:
            body["ath"] = ath_of(access_token)
        if nonce is not None:
            body["nonce"] = nonce
        for name, value in {**body, **claims}.items():
            if value is _DROP:
                body.pop(name, None)
            else:
                body[name] = value
        headers: dict[str, Any] = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(body, self.private, algorithm=self.alg, headers=headers)


def joserfc_proof(method: str, url: str, *, iat: float,
                  access_token: str | None = None) -> tuple[str, str]:
    """An ES256 proof made by joserfc end to end; returns (proof, jkt)."""
    key = ECKey.generate_key("P-256")
    public = key.as_dict(private=False)
    claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url,
                              "iat": int(iat)}
    if access_token is not None:
        claims["ath"] = ath_of(access_token)
    proof = jose_jwt.encode({"alg": "ES256", "typ": "dpop+jwt", "jwk": public}, claims, key)
    return proof, key.thumbprint()
