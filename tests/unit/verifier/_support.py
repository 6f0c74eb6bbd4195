"""Test helpers: a tiny issuer that signs real tokens with keys generated here."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tessera.verifier import KeySet, VerificationPolicy
from tessera.verifier.revocation import RevocationState
from tests.tokens import DROP as DROP  # re-exported: tests import it from here
from tests.tokens import access_token_claims

ISSUER = "https://id.tessera.test"
AUDIENCE = "orders"
NOW = 1_800_000_000.0

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def generate(alg: str) -> PrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(key: PrivateKey, *, kid: str, alg: str) -> dict[str, Any]:
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        jwk = json.loads(RSAAlgorithm.to_jwk(pub))
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        jwk = json.loads(ECAlgorithm.to_jwk(pub))
    else:
        jwk = json.loads(OKPAlgorithm.to_jwk(pub))
    jwk.pop("key_ops", None)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return dict(jwk)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Minter:
    """Signs access tokens the way the identity service does."""

    def __init__(self, keys: dict[str, tuple[str, PrivateKey]]) -> None:
        self.keys = dict(keys)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(k, kid=kid, alg=alg) for kid, (alg, k) in self.keys.items()]}

    def keyset(self) -> KeySet:
        return KeySet.from_jwks(self.jwks())

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """``tests.tokens.access_token_claims`` for ``orders`` and ``billing``; ``DROP``
        removes a claim."""
        return access_token_claims(issuer=ISSUER, audience=[AUDIENCE, "billing"], now=NOW,
                                   **overrides)

    def mint(
        self,
        kid: str = "rs-1",
        *,
        typ: str | None = "at+jwt",
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        alg, key = self.keys[kid]
        extra: dict[str, Any] = {"kid": kid, "typ": typ, **(headers or {})}
        return jwt.encode(self.claims(**claims), key, algorithm=alg, headers=extra)


def policy(**overrides: Any) -> VerificationPolicy:
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, **overrides}
    return VerificationPolicy(**values)


def empty_state() -> RevocationState:
    return RevocationState()
