"""The only module that handles raw key objects and calls the JOSE library (PyJWT).

Call sites never pick an algorithm: each key carries exactly one, and verification only
accepts the algorithm bound to the key named by ``kid`` (RFC 8725 §3.1, §3.2).
"""

from __future__ import annotations

import base64
import json
from typing import Any, cast

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tessera.keys.errors import KeyError_, TokenInvalid

__all__ = ["PrivateKey", "PublicKey", "Signer", "check_alg", "decode", "generate",
           "load_private_pem", "private_pem", "public_jwk", "public_key", "sign",
           "unverified_header"]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def generate(alg: str) -> PrivateKey:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyError_(f"unsupported algorithm {alg!r}")


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_pem(pem: bytes) -> PrivateKey:
    try:
        # Our own keys, sealed with AES-GCM at rest: skip OpenSSL's slow (~35 ms) RSA
        # consistency check on every load, the integrity is the AEAD's.
        key = serialization.load_pem_private_key(pem, password=None,
                                                 unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        raise KeyError_("the private key is not an unencrypted PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                      | ed25519.Ed25519PrivateKey):
        raise KeyError_("unsupported private key type")
    return key


def check_alg(key: PrivateKey, alg: str) -> None:
    """Refuse a key row whose algorithm does not fit its key (a tampered or mistyped
    ``alg`` would otherwise reach PyJWT with a key of the wrong kind)."""
    fits = {
        "RS256": isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048,
        "ES256": isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, ec.SECP256R1),
        "EdDSA": isinstance(key, ed25519.Ed25519PrivateKey),
    }
    if not fits.get(alg, False):
        raise KeyError_(f"algorithm {alg[:20]!r} does not fit this key")


def public_key(key: PrivateKey) -> PublicKey:
    return key.public_key()


def public_jwk(key: PrivateKey, *, kid: str, alg: str) -> dict[str, Any]:
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        jwk = json.loads(RSAAlgorithm.to_jwk(pub))
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        jwk = json.loads(ECAlgorithm.to_jwk(pub))
    else:
        jwk = json.loads(OKPAlgorithm.to_jwk(pub))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    jwk.pop("key_ops", None)
    return cast(dict[str, Any], jwk)


def sign(claims: dict[str, Any], key: PrivateKey, *, alg: str, kid: str, typ: str) -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": typ})


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class Signer:
    """One key's JWS signer (RFC 7515 §7.1 compact form), the hot path of issuance.

    What ``jwt.encode`` redoes per token is done once here: the algorithm object is
    looked up, and the protected header, which only depends on ``typ`` for a given key,
    is serialised and base64url-encoded once per ``typ``. The signature itself is still
    PyJWT's (``Algorithm.sign``: RSASSA-PKCS1-v1_5, ECDSA with the raw r‖s form of RFC
    7518 §3.4, Ed25519), and the output is byte-for-byte what ``jwt.encode`` produces."""

    __slots__ = ("_alg", "_headers", "_key", "_kid", "_sign")

    def __init__(self, key: PrivateKey, *, alg: str, kid: str) -> None:
        self._key, self._alg, self._kid = key, alg, kid
        self._sign = jwt.get_algorithm_by_name(alg).sign
        self._headers: dict[str, bytes] = {}

    def _header(self, typ: str) -> bytes:
        encoded = self._headers.get(typ)
        if encoded is None:
            header = {"alg": self._alg, "kid": self._kid, "typ": typ}
            if not typ:
                del header["typ"]  # as jwt.encode does
            encoded = _b64(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())
            if len(self._headers) < 16:
                self._headers[typ] = encoded
        return encoded

    def sign(self, claims: dict[str, Any], *, typ: str) -> str:
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = self._header(typ) + b"." + payload
        signature = self._sign(signing_input, self._key)
        return (signing_input + b"." + _b64(signature)).decode("ascii")


def unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenInvalid("malformed", str(exc)) from None


def decode(
    token: str,
    key: PublicKey,
    *,
    alg: str,
    issuer: str | None,
    audience: str | list[str] | None,
    leeway: float,
    now: float,
    verify_exp: bool = True,
    required: tuple[str, ...] = ("iss", "exp", "iat"),
) -> dict[str, Any]:
    """Verify signature and registered claims at time ``now``; raise ``TokenInvalid``."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[alg],
            options={
                "require": list(required),
                "verify_aud": audience is not None,
                "verify_iss": issuer is not None,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
            audience=audience,
            issuer=issuer,
        )
    except jwt.InvalidAudienceError:
        raise TokenInvalid("wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise TokenInvalid("wrong_issuer") from None
    except jwt.InvalidSignatureError:
        raise TokenInvalid("bad_signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenInvalid("missing_claim", str(exc)) from None
    except jwt.InvalidAlgorithmError:
        raise TokenInvalid("bad_algorithm") from None
    except jwt.PyJWTError as exc:
        raise TokenInvalid("malformed", str(exc)) from None
    _check_times(claims, now=now, leeway=leeway, verify_exp=verify_exp)
    return claims


def _check_times(claims: dict[str, Any], *, now: float, leeway: float, verify_exp: bool) -> None:
    """exp/nbf/iat against an injected clock (PyJWT would read the wall clock)."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TokenInvalid("malformed", f"{name} is not a number")
    exp = claims.get("exp")
    if verify_exp and exp is not None and now >= exp + leeway:
        raise TokenInvalid("expired")
    nbf = claims.get("nbf")
    if nbf is not None and now + leeway < nbf:
        raise TokenInvalid("not_yet_valid")
    iat = claims.get("iat")
    if iat is not None and now + leeway < iat:
        raise TokenInvalid("issued_in_future")
