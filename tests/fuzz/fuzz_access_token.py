"""Fuzz the access-token validation path: the verifier SDK's ``verify_access_token`` (every
service and the gateway) and the one RFC 9068 validator the identity service calls
(introspection, userinfo, admin API, exchange), with headers and claims an attacker controls.

Documented errors: ``Denied`` (verifier) and ``TokenRejected`` (validator). Inputs:
raw strings, and validly signed tokens with a fuzzed header, a fuzzed payload, or real
claims with one claim replaced by any JSON value, so the fuzzer gets past the signature.
"""

from __future__ import annotations

import contextlib

import atheris

with atheris.instrument_imports(include=["tessera", "jwt"]):
    from tessera.keys import KeyRing, KeyState, new_signing_key
    from tessera.protocol.rfc9068.token import TokenRejected
    from tessera.protocol.rfc9068.validator import validate
    from tessera.verifier import Denied, KeySet, VerificationPolicy, verify_access_token
    from tessera.verifier.revocation import RevocationState

from _harness import run, signed_variant

ISSUER = "https://id.example"
AUDIENCE = "orders"
NOW = 1_800_000_000.0
KEY = new_signing_key("EdDSA", state=KeyState.ACTIVE, now=NOW - 3600)
RING = KeyRing([KEY])
KEYS = KeySet.from_jwks(RING.jwks())
POLICIES = (VerificationPolicy(issuer=ISSUER, audience=AUDIENCE),
            VerificationPolicy(issuer=ISSUER, audience=AUDIENCE,
                               required_scopes=frozenset({"orders:read"}), max_staleness=30.0,
                               min_acr="urn:tessera:acr:mfa", max_auth_age=600))
STATE = RevocationState()
STATE.load_snapshot({"seq": 2, "events": [
    {"seq": 1, "kind": "session.revoked", "key": "sid-revoked", "at": NOW - 10,
     "expires_at": NOW + 600, "data": {}},
    {"seq": 2, "kind": "session.version_bumped", "key": "sid-1", "at": NOW - 5,
     "expires_at": NOW + 600, "data": {"sv": 2}}],
    "watermark": {"head": 2, "at": NOW, "epoch": None}}, now=NOW)  # fresh as of NOW
HEADER = {"alg": "EdDSA", "kid": KEY.kid, "typ": "at+jwt"}
CLAIMS = {"iss": ISSUER, "sub": "user-1", "aud": [AUDIENCE], "exp": NOW + 300, "iat": NOW,
          "nbf": NOW, "jti": "jti-1", "client_id": "c-1", "scope": "orders:read", "sid": "sid-1",
          "sv": 2, "tid": "t-1", "acr": "urn:tessera:acr:mfa", "amr": ["pwd", "otp"],
          "auth_time": NOW - 60, "cnf": {"jkt": "x" * 43}, "act": {"sub": "admin"}}


def _sign(signing_input: bytes) -> bytes:
    return bytes(KEY.private_key.sign(signing_input))  # type: ignore[call-arg,arg-type]


def _token(fdp: atheris.FuzzedDataProvider) -> str:
    return signed_variant(fdp, header=HEADER, claims=CLAIMS, sign=_sign,
                          header_members=["alg", "kid", "typ", "crit", "jku", "b64"],
                          claim_names=["cnf.jkt", "act.sub"])


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    policy = POLICIES[fdp.ConsumeIntInRange(0, 1)]
    token = _token(fdp)
    with contextlib.suppress(Denied):
        verify_access_token(token, keys=KEYS, policy=policy, revocation_state=STATE, now=NOW)
    with contextlib.suppress(TokenRejected):
        validate(token, keys=RING.verification_keys, expect=policy, revocation=STATE, now=NOW)


if __name__ == "__main__":
    run(test_one_input, seeds=[b"\x03" * 64, b"\x01\x00" * 40, b"eyJ"])
