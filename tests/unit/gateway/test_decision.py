"""The pure decision: scopes, acr (RFC 9470 step-up), max_age, refusals from the verifier,
strict + stale; only ever 200, 401 or 403."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from tessera.gateway import Rule, decide, parse_policy
from tessera.gateway.decision import (
    allow_public,
    challenge,
    deny_bad_request,
    deny_exchange,
    deny_internal_error,
    deny_unmatched,
)
from tessera.gateway.denials import MissingToken, Unavailable
from tessera.verifier import Denied, Reason, VerifiedToken

from ._support import MFA, NOW, PWD

POLICY = parse_policy({
    "acr_levels": [PWD, MFA],
    "routes": [
        {"match": {"path": "/read"}, "scopes": ["orders:read"]},
        {"match": {"path": "/write"}, "scopes": ["orders:write", "orders:read"]},
        {"match": {"path": "/mfa"}, "acr": MFA},
        {"match": {"path": "/recent"}, "max_age": 300},
        {"match": {"path": "/both"}, "acr": MFA, "max_age": 300},
        {"match": {"path": "/pwd"}, "acr": PWD},
        {"match": {"path": "/strict"}, "strict": True},
        {"match": {"path": "/x"}, "exchange_to": "https://d", "exchange_scope": "a b"},
    ]})
READ, WRITE, MFA_ROUTE, RECENT, BOTH, PWD_ROUTE, STRICT, EXCHANGE = POLICY.rules


def token(**overrides: Any) -> VerifiedToken:
    values: dict[str, Any] = {
        "kid": "k", "alg": "EdDSA", "iss": "https://id", "sub": "user-1", "aud": ("api",),
        "exp": NOW + 300, "iat": NOW, "nbf": None, "jti": "j", "client_id": "web",
        "scopes": frozenset({"orders:read"}), "tid": "t1", "sid": "s1", "sv": 1, "acr": PWD,
        "amr": ("pwd",), "auth_time": NOW - 60, "cnf_jkt": None, "act": None,
        "claims": MappingProxyType({}), **overrides}
    return VerifiedToken(**values)


def run(rule: Rule, outcome: VerifiedToken | Denied, *, now: float = NOW,
        leeway: float = 0.0) -> Any:
    return decide(rule, outcome, acr_levels=POLICY.acr_levels, now=now, leeway=leeway)


def test_allowed_with_the_token() -> None:
    verified = token()
    decision = run(READ, verified)
    assert decision.allowed and decision.status == 200 and decision.reason == "valid"
    assert decision.token is verified and decision.rule is READ
    assert decision.challenge is None and decision.error is None
    assert decide(READ, verified, acr_levels=POLICY.acr_levels, now=NOW,
                  allowed_reason="introspected").reason == "introspected"


def test_a_missing_scope_is_403_naming_every_required_scope() -> None:
    decision = run(WRITE, token())
    assert (decision.status, decision.reason, decision.error) == (
        403, "insufficient_scope", "insufficient_scope")
    assert decision.challenge == ('Bearer error="insufficient_scope", error_description='
                                  '"The access token lacks a required scope.", '
                                  'scope="orders:read orders:write"')
    assert run(WRITE, token(scopes=frozenset({"orders:read", "orders:write"}))).allowed


@pytest.mark.parametrize("acr", [PWD, None, "urn:other:acr", ""])
def test_acr_below_the_route_level_is_an_rfc9470_step_up_challenge(acr: str | None) -> None:
    decision = run(MFA_ROUTE, token(acr=acr))
    assert (decision.status, decision.reason, decision.error) == (
        401, "acr_too_low", "insufficient_user_authentication")
    assert decision.challenge == (
        'Bearer error="insufficient_user_authentication", error_description="A different '
        'authentication level is required.", acr_values="urn:tessera:acr:mfa"')


def test_a_stronger_acr_satisfies_a_weaker_requirement() -> None:
    assert run(MFA_ROUTE, token(acr=MFA)).allowed
    assert run(PWD_ROUTE, token(acr=MFA)).allowed
    assert run(PWD_ROUTE, token(acr=PWD)).allowed


def test_max_age_judges_auth_time_with_the_leeway() -> None:
    assert run(RECENT, token(auth_time=NOW - 300)).allowed
    old = run(RECENT, token(auth_time=NOW - 301))
    assert (old.status, old.reason, old.error) == (401, "auth_too_old",
                                                   "insufficient_user_authentication")
    assert old.challenge == ('Bearer error="insufficient_user_authentication", '
                             'error_description="More recent authentication is required.", '
                             'max_age="300"')
    assert run(RECENT, token(auth_time=NOW - 320), leeway=30).allowed
    assert run(RECENT, token(auth_time=None)).reason == "auth_too_old"


def test_acr_and_max_age_together_are_one_challenge_with_both() -> None:
    low = run(BOTH, token(acr=PWD))
    assert low.reason == "acr_too_low"
    assert low.challenge is not None
    assert low.challenge.endswith('acr_values="urn:tessera:acr:mfa", max_age="300"')
    old = run(BOTH, token(acr=MFA, auth_time=NOW - 900))
    assert old.reason == "auth_too_old"
    assert old.challenge is not None
    assert old.challenge.endswith('acr_values="urn:tessera:acr:mfa", max_age="300"')


def test_scopes_are_judged_before_acr() -> None:
    assert run(WRITE, token(acr=None)).reason == "insufficient_scope"


@pytest.mark.parametrize(("reason", "description"), [
    (Reason.EXPIRED, "The access token expired."),
    (Reason.SESSION_REVOKED, "The session was revoked."),
    (Reason.WRONG_AUDIENCE, "The access token is not meant for this service."),
    (Reason.BAD_SIGNATURE, "The access token signature is invalid."),
    (Reason.MALFORMED, "The access token is malformed."),
])
def test_invalid_tokens_are_401(reason: Reason, description: str) -> None:
    decision = run(READ, Denied(reason, "detail never sent"))
    assert (decision.status, decision.reason, decision.error) == (401, reason.value,
                                                                  "invalid_token")
    assert decision.description == description
    assert decision.challenge == (f'Bearer error="invalid_token", '
                                  f'error_description="{description}"')


def test_no_token_is_a_bare_challenge() -> None:
    decision = run(READ, MissingToken())
    assert (decision.status, decision.reason, decision.challenge) == (401, "missing_token",
                                                                      "Bearer")
    assert decision.error == "invalid_token"


def test_strict_and_stale_or_unverifiable_is_401_temporarily_unavailable() -> None:
    for denied, label in ((Denied(Reason.STALE_STATE, "lag 12s"), "stale_state"),
                          (Unavailable("keys_unavailable"), "keys_unavailable")):
        decision = run(STRICT, denied)
        assert (decision.status, decision.reason, decision.error) == (
            401, label, "temporarily_unavailable")
        assert decision.challenge is not None
        assert decision.challenge.startswith('Bearer error="temporarily_unavailable"')


def test_an_insufficient_scope_refusal_from_the_verifier_is_403() -> None:
    assert run(READ, Denied(Reason.INSUFFICIENT_SCOPE)).status == 403


@pytest.mark.parametrize("reason", list(Reason))
def test_never_anything_but_401_or_403(reason: Reason) -> None:
    assert run(READ, Denied(reason)).status in (401, 403)


def test_requests_without_a_route() -> None:
    unmatched = deny_unmatched()
    assert (unmatched.status, unmatched.reason, unmatched.error) == (403, "no_route",
                                                                     "access_denied")
    assert unmatched.rule_label == "none"
    bad = deny_bad_request("The original URI is empty.")
    assert (bad.status, bad.reason, bad.error) == (400, "bad_request", "invalid_request")
    assert bad.challenge == ('Bearer error="invalid_request", '
                             'error_description="The original URI is empty."')
    public = allow_public(READ)
    assert public.allowed and public.reason == "public" and public.token is None
    internal = deny_internal_error()
    assert (internal.status, internal.error) == (401, "temporarily_unavailable")


def test_exchange_failures() -> None:
    verified = token()
    gone = deny_exchange(EXCHANGE, verified, "invalid_grant")
    assert (gone.status, gone.error, gone.reason) == (401, "invalid_token", "exchange_refused")
    narrow = deny_exchange(EXCHANGE, verified, "invalid_scope")
    assert (narrow.status, narrow.error) == (403, "insufficient_scope")
    assert narrow.challenge is not None and narrow.challenge.endswith('scope="a b"')
    for code in ("invalid_target", "invalid_client", None):
        failed = deny_exchange(EXCHANGE, verified, code)
        assert (failed.status, failed.error) == (401, "temporarily_unavailable")
    assert deny_exchange(EXCHANGE, verified, None).reason == "exchange_unavailable"


def test_challenge_values_cannot_break_out_of_their_quotes() -> None:
    assert challenge("invalid_token", 'a "quoted"\r\n\\ text', scope='x"y') == (
        'Bearer error="invalid_token", error_description="a quoted text", scope="xy"')
    assert challenge() == "Bearer"
