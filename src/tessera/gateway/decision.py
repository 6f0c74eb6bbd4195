"""The access decision, pure: (rule, verified token or refusal, now) → ``Decision``.

No I/O and no clock: the authorizer verifies (SDK), calls ``decide``, exchanges, records.
Statuses are only ever 200, 400, 401 and 403 (nginx ``auth_request`` turns a 400 into a
500, which the shipped config answers as 400 again: ``tessera-locations.conf``)::

    no rule matches (default deny)     403 access_denied
    unusable or ambiguous request      400 invalid_request (RFC 6750 §3.1)
    public rule                        200, anonymous
    refusal from the verifier
      no bearer token                  401, challenge ``Bearer`` (RFC 6750 §3.1: no code)
      stale state (strict), no keys,   401 temporarily_unavailable
      introspection unreachable
      insufficient_scope               403 insufficient_scope
      anything else                    401 invalid_token (malformed, expired, revoked, ...)
    verified token, in this order
      a required scope missing         403 insufficient_scope, scope="<required>"
      acr below the route's level      401 insufficient_user_authentication, acr_values
                                       (+ max_age)                       RFC 9470 §3
      auth_time older than max_age     401 insufficient_user_authentication, max_age
                                       (+ acr_values)                    RFC 9470 §3
      otherwise                        200 with the identity
    token exchange refused             401 invalid_token (invalid_grant) or
                                       403 insufficient_scope (invalid_scope)
    exchange unavailable, bug          401 temporarily_unavailable

Each ``Decision`` has the ``WWW-Authenticate`` challenge (RFC 6750 §3) and the JSON error
body's ``error``/``error_description``; descriptions are fixed texts, never input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from tessera.gateway.denials import MISSING_TOKEN, label_of
from tessera.gateway.policy import AcrLevels, Rule
from tessera.verifier import Denied, Reason, VerifiedToken

__all__ = [
    "ACR_TOO_LOW",
    "AUTH_TOO_OLD",
    "BAD_REQUEST",
    "EXCHANGE_REFUSED",
    "EXCHANGE_UNAVAILABLE",
    "INTERNAL_ERROR",
    "NO_ROUTE",
    "PUBLIC",
    "VALID",
    "Decision",
    "allow_public",
    "challenge",
    "decide",
    "deny_bad_request",
    "deny_exchange",
    "deny_internal_error",
    "deny_unmatched",
]

VALID: Final = "valid"
PUBLIC: Final = "public"
NO_ROUTE: Final = "no_route"
BAD_REQUEST: Final = "bad_request"
ACR_TOO_LOW: Final = "acr_too_low"
AUTH_TOO_OLD: Final = "auth_too_old"
EXCHANGE_REFUSED: Final = "exchange_refused"
EXCHANGE_UNAVAILABLE: Final = "exchange_unavailable"
INTERNAL_ERROR: Final = "internal_error"

INSUFFICIENT_USER_AUTHENTICATION: Final = "insufficient_user_authentication"
TEMPORARILY_UNAVAILABLE: Final = "temporarily_unavailable"
_UNSAFE: Final = re.compile(r'["\\\x00-\x1f\x7f]')


@dataclass(frozen=True, slots=True)
class Decision:
    status: int
    """200, 400 (unusable request), 401 or 403 — nothing else, ever."""
    reason: str
    """``valid``/``introspected``/``public`` when allowed, else why (decision events)."""
    rule: Rule | None = None
    """The deciding rule (``None``: no rule matched or the request was unusable)."""
    token: VerifiedToken | None = None
    error: str | None = None
    description: str | None = None
    challenge: str | None = None
    """The ``WWW-Authenticate`` value of a refusal."""
    dpop_nonce: str | None = None
    """RFC 9449 §9: a nonce the client must put in its next proof (``DPoP-Nonce``)."""

    @property
    def allowed(self) -> bool:
        return self.status == 200

    @property
    def rule_label(self) -> str:
        return self.rule.label if self.rule is not None else "none"


def challenge(error: str | None = None, description: str | None = None,
              **params: str | None) -> str:
    """An RFC 6750 §3 ``Bearer`` challenge; quoted values are stripped of ``"``, ``\\``
    and control characters."""
    parts = [f'error="{error}"'] if error else []
    if description:
        parts.append(f'error_description="{_UNSAFE.sub("", description)}"')
    parts.extend(f'{name}="{_UNSAFE.sub("", value)}"' for name, value in params.items()
                 if value)
    return "Bearer " + ", ".join(parts) if parts else "Bearer"


def _refuse(status: int, reason: str, error: str, description: str, *,
            rule: Rule | None = None, token: VerifiedToken | None = None,
            **params: str | None) -> Decision:
    return Decision(status, reason, rule, token, error, description,
                    challenge(error, description, **params))


def allow_public(rule: Rule) -> Decision:
    return Decision(200, PUBLIC, rule)


def deny_unmatched() -> Decision:
    return _refuse(403, NO_ROUTE, "access_denied", "No route of the gateway policy allows "
                   "this request.")


def deny_bad_request(description: str) -> Decision:
    return _refuse(400, BAD_REQUEST, "invalid_request", description)


def deny_internal_error(rule: Rule | None = None) -> Decision:
    return _refuse(401, INTERNAL_ERROR, TEMPORARILY_UNAVAILABLE,
                   "The request cannot be authorized right now; try again later.", rule=rule)


def deny_exchange(rule: Rule, token: VerifiedToken, refused: str | None) -> Decision:
    """The token exchange for the upstream failed: ``refused`` is the identity service's
    OAuth error code, ``None`` when it could not be asked (or answered nonsense)."""
    if refused == "invalid_grant":
        return _refuse(401, EXCHANGE_REFUSED, "invalid_token",
                       "The access token is no longer active.", rule=rule, token=token)
    if refused == "invalid_scope":
        return _refuse(403, EXCHANGE_REFUSED, "insufficient_scope",
                       "The access token does not allow the scope the upstream needs.",
                       rule=rule, token=token, scope=rule.exchange_scope)
    return _refuse(401, EXCHANGE_REFUSED if refused else EXCHANGE_UNAVAILABLE,
                   TEMPORARILY_UNAVAILABLE,
                   "A token for the upstream cannot be obtained right now; try again later.",
                   rule=rule, token=token)


def decide(rule: Rule, outcome: VerifiedToken | Denied, *, acr_levels: AcrLevels,
           now: float, leeway: float = 0.0, allowed_reason: str = VALID) -> Decision:
    """The decision for a non-public ``rule`` given what the verifier concluded.

    ``now`` and ``leeway`` (the verifier's clock-skew allowance) judge ``max_age``.
    """
    if isinstance(outcome, Denied):
        return _refusal(rule, outcome)
    token = outcome
    if not rule.scopes <= token.scopes:
        return _refuse(403, Reason.INSUFFICIENT_SCOPE.value, "insufficient_scope",
                       "The access token lacks a required scope.", rule=rule, token=token,
                       scope=" ".join(sorted(rule.scopes)))
    acr_ok = rule.acr is None or acr_levels.satisfies(token.acr, rule.acr)
    age_ok = rule.max_age is None or (
        token.auth_time is not None and now - token.auth_time <= rule.max_age + leeway)
    if not (acr_ok and age_ok):
        description = ("A different authentication level is required." if not acr_ok
                       else "More recent authentication is required.")
        return _refuse(401, ACR_TOO_LOW if not acr_ok else AUTH_TOO_OLD,
                       INSUFFICIENT_USER_AUTHENTICATION, description, rule=rule, token=token,
                       acr_values=rule.acr,
                       max_age=str(rule.max_age) if rule.max_age is not None else None)
    return Decision(200, allowed_reason, rule, token)


def _refusal(rule: Rule, denied: Denied) -> Decision:
    label = label_of(denied)
    if label == MISSING_TOKEN:
        return Decision(401, label, rule, None, "invalid_token", denied.description,
                        challenge())
    if denied.reason is Reason.STALE_STATE or denied.status >= 500:
        return _refuse(401, label, TEMPORARILY_UNAVAILABLE, denied.description, rule=rule)
    if denied.reason is Reason.INSUFFICIENT_SCOPE:
        return _refuse(403, label, "insufficient_scope", denied.description, rule=rule)
    return _refuse(401, label, "invalid_token", denied.description, rule=rule)
