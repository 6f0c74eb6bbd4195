"""The JWT attack corpus (RFC 8725 §2, §3; RFC 9068 §4; RFC 7515 §4.1.11).

Each ``Attack`` turns a *valid* token's ingredients (the real signing key, its ``kid``,
claims that verify) into a forged or abused token that must be refused, and names the
``Reason`` the one RFC 9068 validator (``tessera.protocol.rfc9068.validator``) gives — on
its own, inside the SDK's ``verify_access_token`` and behind every endpoint. Built from
real ingredients on purpose: every attack differs from an accepted token in exactly one
way, so each can fail.

``GARBAGE`` is static: strings that are not JWTs at all.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from jwt.algorithms import get_default_algorithms

from tessera import jose
from tessera.jose import PrivateKey
from tests.tokens import changed

__all__ = ["ATTACKS", "GARBAGE", "Attack", "Forge", "attacker_key", "b64", "compact"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def compact(header: Any, claims: Any, sign: Callable[[bytes], bytes] | None) -> str:
    """A compact JWS built by hand, so headers can say anything an attacker likes."""
    head = header if isinstance(header, bytes) else _json(header)
    body = claims if isinstance(claims, bytes) else _json(claims)
    signing_input = f"{b64(head)}.{b64(body)}".encode()
    signature = sign(signing_input) if sign else b""
    return f"{signing_input.decode()}.{b64(signature)}"


@functools.cache
def attacker_key(alg: str) -> PrivateKey:
    """A key of the attacker's own, one per algorithm (generated once per run)."""
    return jose.generate(alg)


@dataclass(frozen=True)
class Forge:
    """The ingredients of an accepted token: the service's signing key and claims."""

    key: PrivateKey
    kid: str
    alg: str
    claims: dict[str, Any]
    now: float
    leeway: float
    typ: str = "at+jwt"
    header: dict[str, Any] = field(default_factory=dict)

    def with_claims(self, **changes: Any) -> dict[str, Any]:
        """The valid claims with ``changes``; a value of ``None`` drops the claim."""
        return changed(self.claims, changes, drop=None)

    def valid_header(self, **changes: Any) -> dict[str, Any]:
        return changed({"alg": self.alg, "kid": self.kid, "typ": self.typ, **self.header},
                       changes, drop=None)

    def signer(self, key: Any = None, alg: str | None = None) -> Callable[[bytes], bytes]:
        algorithm = get_default_algorithms()[alg or self.alg]
        return functools.partial(algorithm.sign, key=key or self.key)

    def sign(self, claims: dict[str, Any] | None = None, **header: Any) -> str:
        """A token the service itself could have issued (then changed as asked)."""
        return compact(self.valid_header(**header), self.claims if claims is None else claims,
                       self.signer())

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable[[Forge], str]
    reason: str
    """The validator's ``Reason`` (its value)."""
    audience_checked: bool = False
    """Only refused where the audience is checked (userinfo, admin, the SDK);
    introspection and revocation accept any audience."""


def _alg_none(f: Forge) -> str:
    return compact(f.valid_header(alg="none"), f.claims, None)


def _alg_none_keeping_signature(f: Forge) -> str:
    real = f.sign()
    return f"{compact(f.valid_header(alg='none'), f.claims, None)[:-1]}.{real.split('.')[2]}"


def _hs256_with_public_pem(f: Forge) -> str:
    """Key confusion: HMAC keyed with the public key, hoping the verifier uses the
    key bytes as an HMAC secret because the header says HS256."""
    pem = f.public_pem()
    return compact(f.valid_header(alg="HS256"), f.claims,
                   lambda data: hmac.new(pem, data, hashlib.sha256).digest())


def _hs256_with_public_jwk(f: Forge) -> str:
    secret = jose.public_jwk(f.key, kid=f.kid, alg=f.alg)["n" if f.alg == "RS256" else "x"]
    return compact(f.valid_header(alg="HS256"), f.claims,
                   lambda data: hmac.new(secret.encode(), data, hashlib.sha256).digest())


def _kid_other_alg(f: Forge) -> str:
    """The kid of our key, an algorithm it is not bound to, signed with the attacker's."""
    alg = "ES256" if f.alg != "ES256" else "RS256"
    return compact(f.valid_header(alg=alg), f.claims, f.signer(attacker_key(alg), alg))


def _embedded_jwk(f: Forge) -> str:
    """The attacker's key in the header (jwk/jku/x5u), signed with it, our kid."""
    attacker = attacker_key(f.alg)
    jwk = jose.public_jwk(attacker, kid=f.kid, alg=f.alg)
    header = f.valid_header(jwk=jwk, jku="https://evil.example/jwks",
                            x5u="https://evil.example/cert.pem")
    return compact(header, f.claims, f.signer(attacker))


def _tampered_payload(f: Forge) -> str:
    head, _, sig = f.sign().split(".")
    forged = f.with_claims(scope="openid tessera:admin api:write", sub="someone-else")
    return f"{head}.{b64(_json(forged))}.{sig}"


def _tampered_header(f: Forge) -> str:
    _, body, sig = f.sign().split(".")
    return f"{b64(_json(f.valid_header(cty='JWT')))}.{body}.{sig}"


def _signature_stripped(f: Forge) -> str:
    head, body, _ = f.sign().split(".")
    return f"{head}.{body}."


def _signature_from_other_token(f: Forge) -> str:
    other = f.sign(f.with_claims(jti="another-token"))
    head, body, _ = f.sign().split(".")
    return f"{head}.{body}.{other.split('.')[2]}"


def _claims(**changes: Any) -> Callable[[Forge], str]:
    def build(f: Forge) -> str:
        return f.sign(f.with_claims(**changes))
    return build


def _header(**changes: Any) -> Callable[[Forge], str]:
    def build(f: Forge) -> str:
        return f.sign(**changes)
    return build


def _expired(f: Forge) -> str:
    return f.sign(f.with_claims(exp=int(f.now - f.leeway) - 1, iat=int(f.now) - 3600,
                                nbf=int(f.now) - 3600))


def _not_yet_valid(f: Forge) -> str:
    return f.sign(f.with_claims(nbf=int(f.now + f.leeway) + 60))


def _issued_in_future(f: Forge) -> str:
    return f.sign(f.with_claims(iat=int(f.now + f.leeway) + 60, nbf=None))


def _nested_header(f: Forge) -> str:
    """Deep JSON nesting: a RecursionError in a naive parser, and under the size limits."""
    return compact(b"[" * 1500 + b"]" * 1500, f.claims, f.signer())


ATTACKS: tuple[Attack, ...] = (
    Attack("alg_none", _alg_none, "bad_algorithm"),
    Attack("alg_none_keeping_signature", _alg_none_keeping_signature, "bad_algorithm"),
    Attack("alg_None_capitalised", lambda f: compact(f.valid_header(alg="None"), f.claims, None),
           "bad_algorithm"),
    Attack("alg_missing", lambda f: compact(f.valid_header(alg=None), f.claims, f.signer()),
           "bad_algorithm"),
    Attack("hs256_key_confusion_pem", _hs256_with_public_pem, "bad_algorithm"),
    Attack("hs256_key_confusion_jwk", _hs256_with_public_jwk, "bad_algorithm"),
    Attack("kid_unknown", _header(kid="not-a-key-we-have"), "unknown_kid"),
    Attack("kid_missing", _header(kid=None), "malformed"),
    Attack("kid_not_a_string", _header(kid=7), "malformed"),
    Attack("kid_path_traversal", _header(kid="../../../../dev/null"), "unknown_kid"),
    Attack("kid_sql_injection", _header(kid="x' OR '1'='1"), "unknown_kid"),
    Attack("kid_of_our_key_with_other_alg", _kid_other_alg, "bad_algorithm"),
    Attack("embedded_attacker_jwk_jku_x5u", _embedded_jwk, "bad_signature"),
    Attack("tampered_payload", _tampered_payload, "bad_signature"),
    Attack("tampered_header", _tampered_header, "bad_signature"),
    Attack("signature_stripped", _signature_stripped, "bad_signature"),
    Attack("signature_from_other_token", _signature_from_other_token, "bad_signature"),
    Attack("wrong_iss", _claims(iss="https://evil.example"), "wrong_issuer"),
    Attack("iss_with_trailing_slash", lambda f: f.sign(f.with_claims(iss=f.claims["iss"] + "/")),
           "wrong_issuer"),
    Attack("iss_missing", _claims(iss=None), "malformed"),
    Attack("wrong_aud", _claims(aud="https://api.example"), "wrong_audience",
           audience_checked=True),
    Attack("aud_missing", _claims(aud=None), "malformed"),
    Attack("expired", _expired, "expired"),
    Attack("exp_missing", _claims(exp=None), "malformed"),
    Attack("exp_not_a_number", _claims(exp="99999999999"), "malformed"),
    Attack("nbf_in_future", _not_yet_valid, "not_yet_valid"),
    Attack("iat_in_future", _issued_in_future, "not_yet_valid"),
    Attack("typ_jwt_like_an_id_token", _header(typ="JWT"), "wrong_typ"),
    Attack("typ_missing", _header(typ=None), "wrong_typ"),
    Attack("typ_other_media_type", _header(typ="application/jwt"), "wrong_typ"),
    Attack("crit_unknown_extension", _header(crit=["urn:example:must-understand"]),
           "malformed"),
    Attack("crit_b64_false", _header(crit=["b64"], b64=False), "malformed"),
    Attack("header_nested_json", _nested_header, "malformed"),
    Attack("header_not_an_object",
           lambda f: compact(b'"RS256"', f.claims, f.signer()), "malformed"),
    Attack("payload_not_an_object", lambda f: compact(f.valid_header(), b"[1,2]", f.signer()),
           "malformed"),
)

GARBAGE: tuple[str, ...] = (
    "garbage",
    "a.b.c",
    "...",
    "a.b.c.d",
    "..",
    "e30.e30.e30",
    "eyJhbGciOiJSUzI1NiJ9..",
    "eyJhbGciOiJub25lIn0.e30.",
    "!!!.###.$$$",
    "\u00e9\u00e8.\u00e0.\u00fc",
    "x" * 4000,
    "eyJ" + "A" * 3000 + ".e30.e30",
)
"""Not JWTs at all (must fail parsing, never crash)."""
