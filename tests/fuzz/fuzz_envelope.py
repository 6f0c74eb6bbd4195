"""Fuzz the identity envelope check a queue consumer runs on every message:
``verify_envelope`` (JWS header, publisher key, claims, body binding, revocation under
both consumer policies) with an attacker's envelope and message body.

Documented error: ``EnvelopeDenied`` (a ``Denied``). Inputs: raw strings, and envelopes
validly signed by the publisher's key with a fuzzed header member, a fuzzed payload, or
real claims with one replaced by any JSON value; the body is fuzzed too.
"""

from __future__ import annotations

import contextlib

import atheris

with atheris.instrument_imports(include=["tessera"]):
    from tessera.core.clock import FixedClock
    from tessera.verifier import VerifiedToken
    from tessera.verifier.envelope import (
        ENVELOPE_TYP,
        EnvelopeDenied,
        EnvelopePolicy,
        EnvelopeSigner,
        PublisherKeys,
        RevocationPolicy,
        verify_envelope,
    )
    from tessera.verifier.revocation import RevocationHistory, RevocationState

from _harness import run, signed_variant

NOW = 1_800_000_000.0
QUEUE = "orders.created"
BODY = b'{"order_id": "o-1"}'
SIGNER = EnvelopeSigner.generate("checkout", clock=FixedClock(NOW))
KEY = SIGNER.ring.active
PUBLISHERS = PublisherKeys({"checkout": SIGNER.jwks()})
POLICIES = (EnvelopePolicy(QUEUE),
            EnvelopePolicy(QUEUE, revocation=RevocationPolicy.AUTHORIZED_AT_EMISSION,
                           max_staleness=30.0))
TOKEN = VerifiedToken(
    kid="k", alg="EdDSA", iss="https://id.example", sub="user-1", aud=("checkout",),
    exp=NOW + 300, iat=NOW - 10, nbf=None, jti="jti-1", client_id="c-1",
    scopes=frozenset({"orders:write"}), tid="t-1", sid="sid-1", sv=1, acr="urn:tessera:acr:pwd",
    amr=("pwd",), auth_time=NOW - 60, cnf_jkt=None, act={"sub": "admin"}, claims={})
CLAIMS = SIGNER.claims(TOKEN, body=BODY, audience=QUEUE, request_id="req-1")
HEADER = {"alg": KEY.alg, "kid": KEY.kid, "typ": ENVELOPE_TYP}
SNAPSHOT = {"seq": 1, "events": [{"seq": 1, "kind": "session.revoked", "key": "sid-2",
                                  "at": NOW - 5, "expires_at": NOW + 600, "data": {}}],
            "watermark": {"head": 1, "at": NOW, "epoch": None}}  # fresh as of NOW
STATE = RevocationState()
STATE.load_snapshot(SNAPSHOT, now=NOW)
HISTORY = RevocationHistory()
HISTORY.load_snapshot(SNAPSHOT, now=NOW)


def _sign(signing_input: bytes) -> bytes:
    return bytes(KEY.private_key.sign(signing_input))  # type: ignore[call-arg,arg-type]


def _envelope(fdp: atheris.FuzzedDataProvider) -> str:
    return signed_variant(fdp, header=HEADER, claims=CLAIMS, sign=_sign,
                          header_members=["alg", "kid", "typ", "crit"],
                          claim_names=["tok.jti", "tok.iat", "act.sub"])


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    policy = POLICIES[fdp.ConsumeIntInRange(0, 1)]
    envelope = _envelope(fdp)
    body = BODY if fdp.ConsumeBool() else fdp.ConsumeBytes(64)
    with contextlib.suppress(EnvelopeDenied):
        verify_envelope(envelope, body, publishers=PUBLISHERS, policy=policy,
                        revocation_state=STATE, history=HISTORY, now=NOW)


if __name__ == "__main__":
    run(test_one_input, seeds=[b"\x03" * 64, b"\x01" * 80, b"\x00\x02eyJ"])
