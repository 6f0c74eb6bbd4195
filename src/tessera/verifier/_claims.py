"""Claim checks of a resource server (RFC 6750 §3.1, RFC 9470 §3) and the SDK's form of the
shared validator's RFC 9068 §4 checks: one rule per function.

Each raises ``Denied`` with its reason and returns nothing when the rule holds.
"""

from __future__ import annotations

from tessera.core.acr import acr_satisfies
from tessera.protocol.rfc9068 import validator
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.verifier._policy import VerificationPolicy
from tessera.verifier._token import VerifiedToken
from tessera.verifier.errors import (
    NOT_OWNER,
    WRONG_TENANT,
    Denied,
    Forbidden,
    Reason,
    StepUpRequired,
)

__all__ = ["check_claims", "check_owner", "check_scopes", "check_tenant",
           "check_user_authentication"]


def check_claims(token: VerifiedToken, policy: VerificationPolicy, now: float) -> None:
    """RFC 9068 §4 issuer, audience and lifetime: the shared validator's rule
    (``validator.check_claims``), raising the SDK's ``Denied``."""
    try:
        validator.check_claims(token, policy, now)
    except TokenRejected as exc:
        raise Denied.of(exc) from None


def check_scopes(token: VerifiedToken, policy: VerificationPolicy) -> None:
    """RFC 6750 §3.1: every required scope is granted."""
    if not policy.required_scopes <= token.scopes:
        missing = sorted(policy.required_scopes - token.scopes)
        raise Denied(Reason.INSUFFICIENT_SCOPE, f"missing {' '.join(missing)}")


def check_user_authentication(token: VerifiedToken, policy: VerificationPolicy,
                              now: float) -> None:
    """RFC 9470 §3: ``acr`` at least ``policy.min_acr`` (in ``policy.acr_levels``) and
    ``auth_time`` within ``policy.max_auth_age`` (+ leeway). A missing ``acr`` or
    ``auth_time`` does not satisfy a requirement on it. The challenge names every
    requirement of the route, whichever failed."""
    min_acr, max_age = policy.min_acr, policy.max_auth_age
    if min_acr is None and max_age is None:
        return
    acr_ok = min_acr is None or acr_satisfies(token.acr, min_acr, policy.acr_levels)
    age_ok = max_age is None or (token.auth_time is not None
                                 and now - token.auth_time <= max_age + policy.leeway)
    if not (acr_ok and age_ok):
        raise StepUpRequired(too_old=acr_ok, acr_values=min_acr, max_age=max_age,
                             detail=f"acr {token.acr!r}, auth_time {token.auth_time!r}")


def check_tenant(token: VerifiedToken, tenant_id: str | None) -> None:
    """The token's ``tid`` must be ``tenant_id`` (when one is required)."""
    if tenant_id is not None and token.tid != tenant_id:
        raise Forbidden(WRONG_TENANT, "tid does not match the requested tenant")


def check_owner(token: VerifiedToken, owner: str | None) -> None:
    """The token's ``sub`` must be the resource owner (when one is required)."""
    if owner is not None and token.sub != owner:
        raise Forbidden(NOT_OWNER, "sub is not the resource owner")
