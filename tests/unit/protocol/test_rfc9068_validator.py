"""The one RFC 9068 validator's revocation and binding rules, against both kinds of
``RevocationSource``: the SDK's event-fed ``RevocationState`` and the identity service's
looked-up ``RevocationFacts``. Same facts, same reason, whichever side asks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tessera.protocol.rfc9068.token import Reason, TokenRejected, VerifiedToken, parse_claims
from tessera.protocol.rfc9068.validator import (
    GrainFacts,
    RevocationFacts,
    RevocationSource,
    SessionFacts,
    check_algorithm,
    check_binding,
    check_dpop_binding,
    check_possession,
    check_revocation,
    check_typ,
)
from tessera.verifier.revocation import RevocationState

IAT = 1_800_000_000
TOKEN = parse_claims({"iss": "https://id.example", "sub": "u-1", "aud": "api", "exp": IAT + 300,
                      "iat": IAT, "jti": "j-1", "client_id": "c-1", "tid": "t-1", "sid": "s-1",
                      "sv": 3, "scope": "a"}, kid="k", alg="ES256")

# (name, event the SDK state applies, facts the store would answer, reason or None)
CASES: list[tuple[str, dict[str, Any], RevocationFacts, Reason | None]] = [
    ("jti", {"kind": "token.revoked", "key": "j-1"}, RevocationFacts(jti_revoked=True),
     Reason.TOKEN_REVOKED),
    ("another jti", {"kind": "token.revoked", "key": "j-2"}, RevocationFacts(), None),
    ("session", {"kind": "session.revoked", "key": "s-1"},
     RevocationFacts(session_facts=SessionFacts(revoked=True)), Reason.SESSION_REVOKED),
    ("family of the session and client",
     {"kind": "family.revoked", "key": "f-1", "data": {"sid": "s-1", "client_id": "c-1",
                                                       "before": IAT}},
     RevocationFacts(session_facts=SessionFacts(family_revoked_before=IAT)),
     Reason.FAMILY_REVOKED),
    ("family revoked before the token was issued",
     {"kind": "family.revoked", "key": "f-1", "data": {"sid": "s-1", "client_id": "c-1",
                                                       "before": IAT - 1}},
     RevocationFacts(session_facts=SessionFacts(family_revoked_before=IAT - 1)), None),
    ("newer session version",
     {"kind": "session.version_bumped", "key": "s-1", "data": {"sv": 4}},
     RevocationFacts(session_facts=SessionFacts(version=4)), Reason.STALE_SESSION_VERSION),
    ("same session version",
     {"kind": "session.version_bumped", "key": "s-1", "data": {"sv": 3}},
     RevocationFacts(session_facts=SessionFacts(version=3)), None),
    ("user", {"kind": "user.revoked", "key": "u-1", "data": {"before": IAT}},
     RevocationFacts(grain_facts=GrainFacts(user=IAT)), Reason.USER_REVOKED),
    ("tenant", {"kind": "tenant.revoked", "key": "t-1", "data": {"before": IAT}},
     RevocationFacts(grain_facts=GrainFacts(tenant=IAT)), Reason.TENANT_REVOKED),
    ("client", {"kind": "client.revoked", "key": "c-1", "data": {"before": IAT}},
     RevocationFacts(grain_facts=GrainFacts(client=IAT)), Reason.CLIENT_REVOKED),
    ("user revoked before the token was issued",
     {"kind": "user.revoked", "key": "u-1", "data": {"before": IAT - 1}},
     RevocationFacts(grain_facts=GrainFacts(user=IAT - 1)), None),
]


def _state(event: dict[str, Any]) -> RevocationSource:
    state = RevocationState()
    state.apply({"seq": 1, "at": IAT, "expires_at": IAT + 600, **event})
    return state


SOURCES: dict[str, Callable[[dict[str, Any], RevocationFacts], RevocationSource]] = {
    "sdk state": lambda event, _facts: _state(event),
    "store facts": lambda _event, facts: facts,
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("name", "event", "facts", "reason"), CASES,
                         ids=[case[0] for case in CASES])
def test_one_revocation_rule_for_every_source(source: str, name: str, event: dict[str, Any],
                                              facts: RevocationFacts,
                                              reason: Reason | None) -> None:
    revocations = SOURCES[source](event, facts)
    if reason is None:
        check_revocation(TOKEN, revocations)
        return
    with pytest.raises(TokenRejected) as refused:
        check_revocation(TOKEN, revocations)
    assert refused.value.reason is reason


def _bound(**cnf: str) -> VerifiedToken:
    claims = dict(TOKEN.claims)
    claims["cnf"] = cnf
    return parse_claims(claims, kid="k", alg="ES256")


@pytest.mark.parametrize(("cnf", "jkt", "x5t", "reason"), [
    ({}, None, None, None),
    ({}, "key-1", None, Reason.DPOP_BINDING),          # a proof does not upgrade Bearer
    ({"jkt": "key-1"}, None, None, Reason.DPOP_BINDING),
    ({"jkt": "key-1"}, "key-2", None, Reason.DPOP_BINDING),
    ({"jkt": "key-1"}, "key-1", None, None),
    ({"x5t#S256": "cert-1"}, None, None, Reason.CERTIFICATE_BINDING),
    ({"x5t#S256": "cert-1"}, None, "cert-2", Reason.CERTIFICATE_BINDING),
    ({"x5t#S256": "cert-1"}, None, "cert-1", None),
    ({}, None, "any-cert", None),
])
def test_presentation_binding(cnf: dict[str, str], jkt: str | None, x5t: str | None,
                              reason: Reason | None) -> None:
    token = _bound(**cnf) if cnf else TOKEN
    if reason is None:
        check_binding(token, jkt=jkt, x5t=x5t)
        return
    with pytest.raises(TokenRejected) as refused:
        check_binding(token, jkt=jkt, x5t=x5t)
    assert refused.value.reason is reason


def test_possession_lets_a_proof_bind_what_is_issued_next() -> None:
    """Refresh and exchange: an unbound credential with a proof is fine (the proof binds
    the new token); a bound one needs a proof of its own key."""
    check_possession(None, "key-1")
    check_possession("key-1", "key-1")
    for jkt in (None, "key-2"):
        with pytest.raises(TokenRejected):
            check_possession("key-1", jkt)
    with pytest.raises(TokenRejected):
        check_dpop_binding(None, "key-1")


def test_header_steps_take_their_allowlist_and_typ() -> None:
    """Envelopes run the same header steps with their own lists: an access token's
    algorithm or ``typ`` is refused under an envelope's, and the defaults stay the access
    token's."""
    envelope_algs, envelope_typs = frozenset({"EdDSA"}), frozenset({"tessera-envelope+jwt"})
    with pytest.raises(TokenRejected) as refused:
        check_algorithm("RS256", envelope_algs)
    assert refused.value.reason is Reason.BAD_ALGORITHM
    check_algorithm("RS256")
    check_algorithm("EdDSA", envelope_algs)
    with pytest.raises(TokenRejected) as refused:
        check_typ("at+jwt", envelope_typs)
    assert refused.value.reason is Reason.WRONG_TYP
    with pytest.raises(TokenRejected):
        check_typ("tessera-envelope+jwt")
    check_typ("Tessera-Envelope+JWT", envelope_typs)


def test_a_verified_token_speaks_the_vocabulary() -> None:
    """Claim names are mapped once: ``sub`` is the ``user_id``, ``tid`` the ``tenant_id``."""
    assert (TOKEN.user_id, TOKEN.tenant_id, TOKEN.client_id, TOKEN.sid) == (
        "u-1", "t-1", "c-1", "s-1")
