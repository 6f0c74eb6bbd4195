"""The only module that handles raw key objects and calls the JOSE library (PyJWT).

Call sites never pick an algorithm: each key carries exactly one, and verification only
accepts the algorithm bound to the key named by ``kid`` (RFC 8725 §3.1, §3.2).
"""

from __future__ import annotations

import json
from typing import Any, cast

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from tessera.keys.errors import KeyError_, TokenInvalid

__all__ = ["PrivateKey", "PublicKey", "check_alg", "decode", "generate", "load_private_pem",
           "private_pem", "public_jwk", "public_key", "sign", "unverified_header"]

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
