"""Identity envelopes: signing from a verified access token, verification in the consumer
(signature, typ, alg, issuer, audience, lifetime, body binding, replay) and revocation at
processing time under both consumer policies."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType
from typing import Any

import jwt
import pytest

from tessera.core.clock import FixedClock
from tessera.keys import KeyRing, KeyState, new_signing_key
from tessera.verifier import (
    Denied,
    InvalidEvent,
    KeySet,
    Reason,
    VerifiedToken,
    verify_access_token,
)
from tessera.verifier.envelope import (
    ENVELOPE_TYP,
    MAX_ENVELOPE_TTL,
    DecisionBasis,
    EnvelopeDenied,
    EnvelopePolicy,
    EnvelopeSigner,
    EnvelopeVerifier,
    PublisherKeys,
    RevocationPolicy,
    verify_envelope,
)
from tessera.verifier.revocation import EventKind, RevocationHistory, RevocationState

from ._support import NOW, Minter, b64, policy

QUEUE = "orders.created"
PUBLISHER = "checkout"
BODY = b'{"order_id": "o-1", "total": 42}'
REJECT = RevocationPolicy.REJECT_REVOKED
AT_EMISSION = RevocationPolicy.AUTHORIZED_AT_EMISSION
ENVELOPE_CLAIMS = {"iss", "sub", "aud", "jti", "iat", "exp", "req", "msg", "tid", "client_id",
                   "tok", "sid", "sv", "acr", "amr", "auth_time", "act"}


def event(seq: int, kind: str, key: str, *, at: float, ttl: float = 360,
          **data: Any) -> dict[str, Any]:
    """A bus event; ``ttl`` 360 = the identity service's horizon (5 min tokens + 60 s)."""
    return {"seq": seq, "kind": kind, "key": key, "at": at, "expires_at": at + ttl,
            "data": data}


class Rig:
    """A publisher holding a verified user token, and consumers with their own state."""

    def __init__(self, minter: Minter, *, alg: str = "EdDSA", **claims: Any) -> None:
        self.clock = FixedClock(NOW)
        self.raw_token = minter.mint("ed-1", **claims)
        self.token: VerifiedToken = verify_access_token(
            self.raw_token, keys=minter.keyset(), policy=policy(),
            revocation_state=RevocationState(), now=NOW)
        self.signer = EnvelopeSigner.generate(PUBLISHER, clock=self.clock, alg=alg)
        self.state = RevocationState()
        self.history = RevocationHistory()
        self.state.load_snapshot({"seq": 0, "events": []}, now=NOW)
        self.history.load_snapshot({"seq": 0, "events": []}, now=NOW)
        self._seq = 0

    def sign(self, body: bytes = BODY, **kw: Any) -> str:
        values: dict[str, Any] = {"body": body, "audience": QUEUE, "request_id": "req-1", **kw}
        return self.signer.sign(self.token, **values)

    def consumer(self, revocation: RevocationPolicy = REJECT, *, history: bool = True,
                 publishers: Mapping[str, Any] | None = None, **policy_kw: Any
                 ) -> EnvelopeVerifier:
        return EnvelopeVerifier(
            EnvelopePolicy(QUEUE, revocation=revocation, **policy_kw),
            publishers=publishers or {PUBLISHER: self.signer.jwks()},
            revocation_state=self.state, history=self.history if history else None,
            clock=self.clock, service="billing-worker")

    def revoke(self, kind: str, key: str, *, ttl: float = 360, **data: Any) -> None:
        """The consumer's follower applies an event that happens now."""
        self._seq += 1
        now = self.clock.now()
        revocation = event(self._seq, kind, key, at=now, ttl=ttl, **data)
        self.state.apply(revocation, now=now)
        self.history.apply(revocation, now=now)

    def at(self, t: float) -> Rig:
        self.clock.advance(NOW + t - self.clock.now())
        self.state.confirm(self.clock.now())
        return self


@pytest.fixture
def rig(minter: Minter) -> Rig:
    return Rig(minter)


def denied(verifier: EnvelopeVerifier, envelope: str, body: bytes = BODY) -> EnvelopeDenied:
    with pytest.raises(EnvelopeDenied) as info:
        verifier.verify(envelope, body)
    return info.value


def segments(envelope: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = envelope.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(header))),
            json.loads(base64.urlsafe_b64decode(pad(payload))))


# -- signing and the round trip ---------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_round_trip_carries_the_actor_and_nothing_else(minter: Minter, alg: str) -> None:
    rig = Rig(minter, alg=alg)
    envelope = rig.sign(request_id="req-7")
    header, claims = segments(envelope)
    assert header == {"alg": alg, "kid": rig.signer.kid, "typ": ENVELOPE_TYP}
    assert set(claims) <= ENVELOPE_CLAIMS
    assert claims["exp"] - claims["iat"] == 900

    result = rig.at(5).consumer().verify(envelope, BODY)
    token = rig.token
    assert (result.actor, result.tenant, result.sid, result.sv) == (
        token.sub, token.tid, token.sid, token.sv)
    assert (result.publisher, result.request_id, result.client_id) == (
        PUBLISHER, "req-7", token.client_id)
    assert (result.acr, result.amr, result.auth_time) == (token.acr, token.amr,
                                                           token.auth_time)
    assert (result.token_jti, result.token_iat, result.token_exp) == (
        token.jti, token.iat, token.exp)
    assert result.basis is DecisionBasis.PROCESSING_TIME
    assert result.policy is REJECT and result.revoked is None and not result.duplicate


def test_the_bearer_token_is_never_inside(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tessera.audit")
    envelope = rig.sign()
    _, claims = segments(envelope)
    raw = rig.raw_token
    signature = raw.rsplit(".", 1)[1]
    for text in (envelope, json.dumps(claims)):
        assert raw not in text and signature not in text
        assert raw.split(".")[1] not in text  # not even the token's payload segment
    assert "scope" not in claims and "cnf" not in claims
    rig.consumer().verify(envelope, BODY)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert envelope not in logged and raw not in logged
    assert envelope.rsplit(".", 1)[1] not in logged


def test_delegation_chain_and_client_tokens(minter: Minter) -> None:
    rig = Rig(minter, act={"sub": "support-7", "act": {"sub": "admin-1"}})
    result = rig.consumer().verify(rig.sign(), BODY)
    assert result.act == {"sub": "support-7", "act": {"sub": "admin-1"}}

    machine = Rig(minter, sid=None, sv=None, sub="client-1")
    envelope = machine.sign()
    assert "sid" not in segments(envelope)[1]
    assert machine.consumer().verify(envelope, BODY).sid is None


def test_signer_refuses_bad_arguments_and_expired_tokens(rig: Rig) -> None:
    with pytest.raises(ValueError, match="request_id"):
        rig.sign(request_id="has spaces")
    with pytest.raises(ValueError, match="ttl"):
        rig.sign(ttl=MAX_ENVELOPE_TTL + 1)
    with pytest.raises(ValueError, match="audience"):
        rig.sign(audience="")
    with pytest.raises(TypeError):
        rig.sign(body="not bytes")
    rig.at(300 + 30)
    with pytest.raises(Denied) as info:
        rig.sign()
    assert info.value.reason is Reason.EXPIRED
    rsa = KeyRing([new_signing_key("RS256", state=KeyState.ACTIVE, now=NOW)])
    with pytest.raises(ValueError, match="active key"):
        EnvelopeSigner(PUBLISHER, rsa, clock=rig.clock)


# -- what the consumer refuses ----------------------------------------------------------


def test_tampered_body_and_an_envelope_moved_to_another_message(rig: Rig) -> None:
    consumer = rig.consumer()
    envelope = rig.sign()
    assert denied(consumer, envelope, BODY + b" ").label == "body_mismatch"
    other = rig.sign(body=b'{"order_id": "o-2"}')
    refused = denied(consumer, other, BODY)
    assert refused.label == "body_mismatch" and refused.reason is Reason.BAD_SIGNATURE
    assert consumer.verify(envelope, BODY).basis is DecisionBasis.PROCESSING_TIME


def test_tampered_claims_break_the_signature(rig: Rig) -> None:
    envelope = rig.sign()
    header, _, signature = envelope.split(".")
    claims = segments(envelope)[1] | {"sub": "someone-else"}
    forged = ".".join([header, b64(json.dumps(claims).encode()), signature])
    assert denied(rig.consumer(), forged).reason is Reason.BAD_SIGNATURE


def test_wrong_audience_expiry_future_iat_and_overlong_lifetime(rig: Rig) -> None:
    consumer = rig.consumer()
    assert denied(consumer, rig.sign(audience="invoices")).reason is Reason.WRONG_AUDIENCE
    envelope = rig.sign(ttl=60)
    rig.at(60 + 30)
    assert denied(consumer, envelope).reason is Reason.EXPIRED
    rig.at(100)
    early = rig.sign()
    rig.at(100 - 31)
    assert denied(consumer, early).reason is Reason.NOT_YET_VALID
    rig.at(100)
    short = rig.consumer(max_lifetime=600)
    refused = denied(short, rig.sign(ttl=3600))
    assert refused.reason is Reason.MALFORMED and "lifetime" in refused.detail


def test_unknown_kid_and_a_key_speaking_for_another_service(rig: Rig) -> None:
    stranger = EnvelopeSigner.generate(PUBLISHER, clock=rig.clock)
    envelope = stranger.sign(rig.token, body=BODY, audience=QUEUE, request_id="r")
    assert denied(rig.consumer(), envelope).reason is Reason.UNKNOWN_KID

    billing = EnvelopeSigner.generate("billing", clock=rig.clock)
    consumer = rig.consumer(publishers={PUBLISHER: rig.signer.jwks(),
                                        "billing": billing.jwks()})
    claims = rig.signer.claims(rig.token, body=BODY, audience=QUEUE, request_id="r")
    key = billing.ring.active
    as_checkout = jwt.encode(claims, key.private_key, algorithm=key.alg,
                             headers={"kid": key.kid, "typ": ENVELOPE_TYP})
    assert denied(consumer, as_checkout).reason is Reason.WRONG_ISSUER


def test_alg_none_hs256_and_algorithm_mismatch_are_refused(rig: Rig) -> None:
    consumer = rig.consumer()
    claims = rig.signer.claims(rig.token, body=BODY, audience=QUEUE, request_id="r")
    headers = {"kid": rig.signer.kid, "typ": ENVELOPE_TYP}
    unsigned = jwt.encode(claims, None, algorithm="none", headers=headers)
    assert denied(consumer, unsigned).reason is Reason.BAD_ALGORITHM
    # HS256 keyed with the publisher's *public* key: the classic confusion attack.
    public_x = rig.signer.jwks()["keys"][0]["x"]
    hmac_forged = jwt.encode(claims, public_x, algorithm="HS256", headers=headers)
    assert denied(consumer, hmac_forged).reason is Reason.BAD_ALGORITHM
    es = EnvelopeSigner.generate(PUBLISHER, clock=rig.clock, alg="ES256")
    swapped = jwt.encode(claims, rig.signer.ring.active.private_key, algorithm="EdDSA",
                         headers={"kid": es.kid, "typ": ENVELOPE_TYP})
    mixed = rig.consumer(publishers={PUBLISHER: es.jwks()})
    assert denied(mixed, swapped).reason is Reason.BAD_ALGORITHM


def test_a_non_string_alg_is_refused_not_a_crash(rig: Rig) -> None:
    """``"alg": ["EdDSA"]`` (a JSON list) must be a refusal, not a TypeError."""
    header = b64(json.dumps({"alg": ["EdDSA"], "kid": rig.signer.kid,
                             "typ": ENVELOPE_TYP}).encode())
    assert denied(rig.consumer(), f"{header}.e30.c2ln").reason is Reason.BAD_ALGORITHM


def test_a_non_ascii_msg_is_refused_not_a_crash(rig: Rig) -> None:
    claims = rig.signer.claims(rig.token, body=BODY, audience=QUEUE, request_id="r")
    envelope = rig.signer.ring.sign({**claims, "msg": "é" * 43}, typ=ENVELOPE_TYP)
    assert denied(rig.consumer(), envelope).reason is Reason.MALFORMED


def test_envelopes_and_access_tokens_cannot_stand_in_for_each_other(
        rig: Rig, minter: Minter) -> None:
    assert denied(rig.consumer(), rig.raw_token).reason is Reason.WRONG_TYP
    with pytest.raises(Denied) as info:
        verify_access_token(rig.sign(), keys=minter.keyset(), policy=policy(),
                            revocation_state=RevocationState(), now=NOW)
    assert info.value.reason is Reason.WRONG_TYP
    claims = rig.signer.claims(rig.token, body=BODY, audience=QUEUE, request_id="r")
    as_jwt = jwt.encode(claims, rig.signer.ring.active.private_key, algorithm="EdDSA",
                        headers={"kid": rig.signer.kid, "typ": "JWT"})
    assert denied(rig.consumer(), as_jwt).reason is Reason.WRONG_TYP


def test_malformed_input(rig: Rig) -> None:
    consumer = rig.consumer()
    for junk in ("", "a.b", "x" * 9000, "eyJhbGciOiJFZERTQSJ9.e30"):
        assert denied(consumer, junk).reason is Reason.MALFORMED
    claims = rig.signer.claims(rig.token, body=BODY, audience=QUEUE, request_id="r")
    del claims["tok"]
    unbound = rig.signer.ring.sign(claims, typ=ENVELOPE_TYP)
    assert denied(consumer, unbound).detail == "tok must be an object with jti, iat and exp"


def test_a_rotated_publisher_key_is_trusted_once_its_jwks_is(rig: Rig) -> None:
    consumer = rig.consumer()
    rig.signer.ring = KeyRing([new_signing_key("ES256", state=KeyState.ACTIVE, now=NOW)])
    envelope = rig.sign()
    assert denied(consumer, envelope).reason is Reason.UNKNOWN_KID
    consumer.trust(PUBLISHER, rig.signer.jwks())
    assert consumer.verify(envelope, BODY).iss == PUBLISHER


def test_a_kid_cannot_belong_to_two_publishers(rig: Rig) -> None:
    with pytest.raises(ValueError, match="published by both"):
        PublisherKeys({"a": rig.signer.jwks(), "b": rig.signer.jwks()})


def test_rsa_keys_are_not_envelope_keys(minter: Minter, rig: Rig) -> None:
    jwks = minter.jwks()  # RS256, ES256 and EdDSA keys of the identity service
    keys = PublisherKeys({"identity": KeySet.from_jwks(jwks)})
    assert keys.get("rs-1") is None and keys.get("es-1") is not None


# -- replay and duplicates --------------------------------------------------------------


def test_a_redelivery_is_accepted_and_flagged_unless_duplicates_are_refused(rig: Rig) -> None:
    envelope = rig.sign()
    consumer = rig.consumer()
    assert consumer.verify(envelope, BODY).duplicate is False
    assert consumer.verify(envelope, BODY).duplicate is True
    strict = rig.consumer(reject_duplicates=True)
    strict.verify(envelope, BODY)
    assert denied(strict, envelope).label == "replayed"


def test_a_duplicate_is_still_checked_for_revocation(rig: Rig) -> None:
    envelope = rig.sign()
    consumer = rig.consumer()
    consumer.verify(envelope, BODY)
    rig.at(10).revoke(EventKind.SESSION_REVOKED, "sid-1")
    assert denied(consumer, envelope).reason is Reason.SESSION_REVOKED


def test_the_seen_set_is_bounded(rig: Rig) -> None:
    consumer = EnvelopeVerifier(EnvelopePolicy(QUEUE), publishers={
        PUBLISHER: rig.signer.jwks()}, revocation_state=rig.state, clock=rig.clock,
        max_seen=2)
    first = rig.sign()
    consumer.verify(first, BODY)
    for _ in range(2):
        consumer.verify(rig.sign(), BODY)
    assert consumer.verify(first, BODY).duplicate is False  # evicted, not remembered


# -- revocation at processing time under each policy ------------------------------------

GRAINS: list[tuple[str, str, dict[str, Any], Reason]] = [
    (EventKind.SESSION_REVOKED, "sid-1", {}, Reason.SESSION_REVOKED),
    (EventKind.USER_REVOKED, "user-1", {}, Reason.USER_REVOKED),
    (EventKind.TENANT_REVOKED, "tenant-1", {}, Reason.TENANT_REVOKED),
    (EventKind.CLIENT_REVOKED, "client-1", {}, Reason.CLIENT_REVOKED),
    (EventKind.FAMILY_REVOKED, "fam-1", {"sid": "sid-1", "client_id": "client-1"},
     Reason.FAMILY_REVOKED),
    (EventKind.SESSION_VERSION_BUMPED, "sid-1", {"sv": 2}, Reason.STALE_SESSION_VERSION),
]


@pytest.mark.parametrize(("kind", "key", "data", "reason"), GRAINS,
                         ids=[g[0] for g in GRAINS])
def test_policies_with_a_revoked_actor(rig: Rig, kind: str, key: str, data: dict[str, Any],
                                       reason: Reason) -> None:
    before = rig.at(10).sign()           # emitted while the actor was authorised
    rig.at(20).revoke(kind, key, **data)
    after = rig.at(30).sign()            # a publisher that had not heard yet
    rig.at(40)

    reject = rig.consumer(REJECT)
    for envelope in (before, after):
        refused = denied(reject, envelope)
        assert (refused.reason, refused.basis) == (reason, DecisionBasis.PROCESSING_TIME)

    emission = rig.consumer(AT_EMISSION)
    accepted = emission.verify(before, BODY)
    assert accepted.basis is DecisionBasis.EMISSION_TIME
    assert accepted.policy is AT_EMISSION and accepted.revoked == reason.value
    refused = denied(emission, after)
    assert (refused.reason, refused.basis) == (reason, DecisionBasis.EMISSION_TIME)


def test_a_revoked_access_token_denies_its_envelopes_by_jti(rig: Rig) -> None:
    envelope = rig.at(10).sign()
    rig.at(20).revoke(EventKind.TOKEN_REVOKED, rig.token.jti)
    assert denied(rig.consumer(), envelope).reason is Reason.TOKEN_REVOKED
    assert rig.consumer(AT_EMISSION).verify(envelope, BODY).revoked == "token_revoked"


def test_emitted_in_the_same_instant_as_the_revocation_counts_as_after(rig: Rig) -> None:
    rig.at(20).revoke(EventKind.SESSION_REVOKED, "sid-1")
    envelope = rig.sign()
    assert denied(rig.consumer(AT_EMISSION), envelope).basis is DecisionBasis.EMISSION_TIME


def test_an_actor_nobody_revoked_is_judged_at_processing_time_under_both(rig: Rig) -> None:
    envelope = rig.sign()
    rig.at(10).revoke(EventKind.SESSION_REVOKED, "some-other-sid")
    rig.revoke(EventKind.USER_REVOKED, "user-1", before=NOW - 1)  # only older tokens
    for revocation in (REJECT, AT_EMISSION):
        result = rig.consumer(revocation).verify(envelope, BODY)
        assert result.basis is DecisionBasis.PROCESSING_TIME and result.revoked is None


def test_authorized_at_emission_needs_a_history_long_enough(rig: Rig) -> None:
    with pytest.raises(ValueError, match="RevocationHistory"):
        rig.consumer(AT_EMISSION, history=False)
    rig.history = RevocationHistory(retain=60)
    with pytest.raises(ValueError, match="retain"):
        rig.consumer(AT_EMISSION)


def test_past_the_token_horizon_only_a_history_can_vouch(rig: Rig) -> None:
    envelope = rig.at(200).sign(ttl=3600)
    rig.at(250).revoke(EventKind.SESSION_REVOKED, "sid-1")
    clean = rig.sign(ttl=3600, request_id="req-2")
    # The session entry expires with the last token it covers (250 + 360); past it the
    # state has pruned it, the history (retain 1 h) still has it.
    rig.at(1000)
    assert len(rig.state) == 0 and len(rig.history) == 1
    without = rig.consumer(history=False)
    refused = denied(without, envelope)
    assert (refused.label, refused.reason) == ("revocation_unknown", Reason.STALE_STATE)
    assert not refused.retryable
    assert denied(rig.consumer(), envelope).reason is Reason.SESSION_REVOKED
    emission = rig.consumer(AT_EMISSION)
    assert emission.verify(envelope, BODY).basis is DecisionBasis.EMISSION_TIME
    assert denied(emission, clean).reason is Reason.SESSION_REVOKED


def test_a_history_loaded_after_the_token_horizon_cannot_vouch(rig: Rig) -> None:
    envelope = rig.sign(ttl=3600)
    rig.at(1000)
    rig.history = RevocationHistory()
    rig.history.load_snapshot({"seq": 0, "events": []}, now=rig.clock.now())
    for revocation in (REJECT, AT_EMISSION):
        assert denied(rig.consumer(revocation), envelope).label == "revocation_unknown"


def test_a_history_that_missed_what_the_state_knows_fails_closed(rig: Rig) -> None:
    envelope = rig.sign()
    rig.at(10)
    rig.state.apply(event(1, EventKind.SESSION_REVOKED, "sid-1", at=NOW + 10))
    refused = denied(rig.consumer(AT_EMISSION), envelope)
    assert refused.label == "revocation_unknown"
    assert refused.basis is DecisionBasis.EMISSION_TIME


def test_a_stale_state_fails_closed_and_says_retry(rig: Rig) -> None:
    envelope = rig.sign()
    rig.clock.advance(20)  # no heartbeat
    refused = denied(rig.consumer(max_staleness=10), envelope)
    assert refused.label == "stale_state" and refused.retryable
    rig.revoke(EventKind.SESSION_REVOKED, "sid-1")  # revoked beats stale
    assert denied(rig.consumer(max_staleness=10), envelope).reason is Reason.SESSION_REVOKED


def test_pure_core_is_the_same_decision(rig: Rig) -> None:
    envelope = rig.sign()
    result = verify_envelope(envelope, BODY, publishers=PublisherKeys(
        {PUBLISHER: rig.signer.jwks()}), policy=EnvelopePolicy(QUEUE),
        revocation_state=rig.state, now=NOW)
    assert result.actor == "user-1"


# -- the decision log -------------------------------------------------------------------


def audit_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "tessera.audit"]


def test_decisions_say_which_moment_authorised_the_action(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tessera.audit")
    before = rig.at(10).sign(request_id="req-before")
    rig.at(20).revoke(EventKind.SESSION_REVOKED, "sid-1")
    after = rig.at(30).sign(request_id="req-after")
    consumer = rig.consumer(AT_EMISSION)
    consumer.verify(before, BODY)
    with pytest.raises(EnvelopeDenied):
        consumer.verify(after, BODY)
    with pytest.raises(EnvelopeDenied):
        consumer.verify(before, b"other body")
    allowed, refused, mismatch = audit_events(caplog)
    jti = segments(before)[1]["jti"]
    assert allowed["event"] == "access.allowed" and allowed["reason"] == "valid"
    assert allowed["basis"] == "emission_time" and allowed["revoked"] == "session_revoked"
    assert allowed["policy"] == "authorized_at_emission"
    assert allowed["jti"] == jti and allowed["correlation_id"] == "req-before"
    assert allowed["publisher"] == PUBLISHER and allowed["route"] == QUEUE
    assert allowed["service"] == "billing-worker" and allowed["user_id"] == "user-1"
    assert allowed["emitted_at"] == NOW + 10 and "sid" not in allowed
    assert len(allowed["sid_hash"]) == 43
    assert refused["event"] == "access.denied" and refused["reason"] == "session_revoked"
    assert refused["basis"] == "emission_time" and refused["status"] == 401
    assert mismatch["reason"] == "body_mismatch" and "basis" not in mismatch


def test_an_unverifiable_envelope_logs_no_claims(rig: Rig,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tessera.audit")
    with pytest.raises(EnvelopeDenied):
        rig.consumer().verify("not.an.envelope", BODY)
    (logged,) = audit_events(caplog)
    assert logged["reason"] == "malformed" and "user_id" not in logged


# -- the history ------------------------------------------------------------------------


class FakeSource:
    def __init__(self, snapshot: dict[str, Any], batches: list[list[dict[str, Any]]]) -> None:
        self._snapshot = snapshot
        self._batches = batches
        self.closed = False

    async def snapshot(self) -> Mapping[str, Any]:
        return self._snapshot

    async def follow(self, after: int) -> AsyncIterator[list[Mapping[str, Any]]]:
        for batch in self._batches:
            yield [e for e in batch if e["seq"] > after]

    async def aclose(self) -> None:
        self.closed = True


async def test_the_history_records_what_the_follower_is_handed() -> None:
    clock = FixedClock(NOW)
    history = RevocationHistory(retain=100)
    older = event(1, EventKind.SESSION_REVOKED, "sid-1", at=NOW - 5)
    later = event(2, EventKind.USER_REVOKED, "user-1", at=NOW + 5)
    source = history.recording(FakeSource({"seq": 1, "events": [older]},
                                          [[older, later], []]), clock=clock)
    assert await source.snapshot() == {"seq": 1, "events": [older]}
    assert history.known_since == NOW and history.cursor == 1
    batches = [batch async for batch in source.follow(1)]
    assert batches == [[later], []]
    assert history.cursor == 2 and len(history) == 2
    await source.aclose()

    view = VerifiedToken("k", "EdDSA", "i", "user-1", ("a",), NOW + 300, NOW, None, "jti-1",
                         "client-1", frozenset(), "tenant-1", "sid-1", 1, None, (), None,
                         None, None, MappingProxyType({}))
    assert history.revoked(view, as_of=NOW - 10) is None
    at_zero = history.revoked(view, as_of=NOW)
    assert at_zero is not None and at_zero.reason is Reason.SESSION_REVOKED
    assert history.prune(NOW - 5 + 360 + 100) == 1
    remaining = history.revoked(view)
    assert remaining is not None and remaining.reason is Reason.USER_REVOKED


def test_the_history_refuses_what_the_state_refuses() -> None:
    history = RevocationHistory()
    bad = {"seq": 1, "kind": EventKind.SESSION_VERSION_BUMPED, "key": "sid-1", "at": NOW,
           "expires_at": NOW + 60, "data": {"sv": "two"}}
    with pytest.raises(InvalidEvent):
        history.apply(bad, now=NOW)
    with pytest.raises(InvalidEvent):
        history.load_snapshot({"seq": 1, "events": [bad]}, now=NOW)
    assert len(history) == 0 and history.cursor == 0 and history.known_since is None
    good = event(1, EventKind.SESSION_REVOKED, "sid-1", at=NOW)
    assert history.apply(good, now=NOW) and not history.apply(good, now=NOW)
    history.load_snapshot({"seq": 1, "events": [good]}, now=NOW)
    assert len(history) == 1  # the same event again is not a second entry
