"""KeySet.from_jwks: one algorithm per key, anything doubtful left out."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tessera.verifier import InvalidJwks, KeySet

from ._support import Minter, public_jwk


def jwk_of(minter: Minter, name: str, /, **overrides: Any) -> dict[str, Any]:
    alg, key = minter.keys[name]
    jwk = public_jwk(key, kid=name, alg=alg)
    for name, value in overrides.items():
        if value is None:
            jwk.pop(name, None)
        else:
            jwk[name] = value
    return jwk


def test_parses_every_supported_algorithm(minter: Minter) -> None:
    keys = KeySet.from_jwks(minter.jwks())
    assert keys.kids == {"rs-1", "es-1", "ed-1"} and len(keys) == 3
    assert isinstance(keys.get("rs-1").public_key, rsa.RSAPublicKey)  # type: ignore[union-attr]
    assert isinstance(keys.get("es-1").public_key, ec.EllipticCurvePublicKey)  # type: ignore[union-attr]
    assert isinstance(keys.get("ed-1").public_key, ed25519.Ed25519PublicKey)  # type: ignore[union-attr]
    assert [k.alg for k in keys] == ["RS256", "ES256", "EdDSA"]
    assert "rs-1" in keys and "nope" not in keys and keys.get("nope") is None
    assert keys.rejected == ()


@pytest.mark.parametrize(
    ("kid", "overrides", "why"),
    [
        ("rs-1", {"alg": None}, "alg"),
        ("rs-1", {"alg": "none"}, "alg"),
        ("rs-1", {"alg": "HS256"}, "alg"),
        ("rs-1", {"alg": "PS256"}, "alg"),
        ("rs-1", {"alg": "ES256"}, "kty"),
        ("es-1", {"alg": "RS256"}, "kty"),
        ("ed-1", {"alg": "ES256"}, "kty"),
        ("es-1", {"crv": "P-384"}, "P-256"),
        ("ed-1", {"crv": "X25519"}, "Ed25519"),
        ("rs-1", {"use": "enc"}, "signature"),
        ("rs-1", {"key_ops": ["encrypt"]}, "verify"),
        ("rs-1", {"kid": None}, "kid"),
        ("rs-1", {"n": None}, "parameters"),
        ("rs-1", {"n": "AQAB"}, "invalid key"),
        ("es-1", {"x": "AAAA"}, "invalid key"),
        ("ed-1", {"d": "c2VjcmV0"}, "private"),
        ("rs-1", {"k": "c2VjcmV0"}, "private"),
    ],
)
def test_unusable_keys_are_left_out(
    minter: Minter, kid: str, overrides: dict[str, Any], why: str
) -> None:
    doc = {"keys": [jwk_of(minter, kid, **overrides), jwk_of(minter, "ed-1" if kid != "ed-1"
                                                          else "rs-1")]}
    keys = KeySet.from_jwks(doc)
    assert len(keys) == 1 and kid not in keys
    assert len(keys.rejected) == 1 and why in keys.rejected[0][1]


def test_short_rsa_key_is_left_out() -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    keys = KeySet.from_jwks({"keys": [public_jwk(short, kid="weak", alg="RS256")]})
    assert len(keys) == 0 and "2048" in keys.rejected[0][1]


def test_symmetric_key_is_left_out() -> None:
    keys = KeySet.from_jwks({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2Vj"}]})
    assert len(keys) == 0 and keys.rejected == (("h", "alg 'HS256' not allowed"),)


def test_duplicate_kid_is_dropped_entirely(minter: Minter) -> None:
    first = jwk_of(minter, "rs-1")
    second = jwk_of(minter, "es-1", kid="rs-1")
    keys = KeySet.from_jwks({"keys": [first, second, jwk_of(minter, "ed-1")]})
    assert keys.kids == {"ed-1"}
    assert ("rs-1", "duplicate kid") in keys.rejected


@pytest.mark.parametrize("doc", [[], {"keys": {}}, {"nokeys": []}, "keys"])
def test_not_a_jwks(doc: Any) -> None:
    with pytest.raises(InvalidJwks):
        KeySet.from_jwks(doc)


def test_non_object_entries_are_rejected() -> None:
    keys = KeySet.from_jwks({"keys": ["x", 3]})
    assert keys.rejected == (("#0", "not an object"), ("#1", "not an object"))


def test_unchanged_keys_are_reused_from_the_previous_set(minter: Minter) -> None:
    old = KeySet.from_jwks(minter.jwks())
    new = KeySet.from_jwks(minter.jwks(), previous=old)
    assert all(new.get(k.kid) is k for k in old)
    changed = {"keys": [jwk_of(minter, "es-1", kid="rs-1"), jwk_of(minter, "ed-1")]}
    newer = KeySet.from_jwks(changed, previous=new)
    assert newer.get("rs-1") is not new.get("rs-1")
    assert newer.get("rs-1").alg == "ES256"  # type: ignore[union-attr]
    assert newer.get("ed-1") is new.get("ed-1")
