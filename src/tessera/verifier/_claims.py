"""Claim checks (RFC 9068 §4, RFC 7519 §4.1, RFC 6750 §3.1, RFC 9470 §3): one rule per
function.

Each raises ``Denied`` with its reason and returns nothing when the rule holds.
"""

from __future__ import annotations

from tessera.core.acr import acr_satisfies
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

__all__ = ["check_audience", "check_issuer", "check_lifetime", "check_owner", "check_scopes",
           "check_tenant", "check_user_authentication"]


def check_issuer(token: VerifiedToken, policy: VerificationPolicy) -> None:
    """RFC 9068 §4 step 3: ``iss`` exactly equals the configured issuer."""
    if token.iss != policy.issuer:
        raise Denied(Reason.WRONG_ISSUER, f"iss {token.iss!r}")


def check_audience(token: VerifiedToken, policy: VerificationPolicy) -> None:
    """RFC 9068 §4 step 4: this service's audience is one of the token's ``aud`` values."""
    if policy.audience not in token.aud:
        raise Denied(Reason.WRONG_AUDIENCE, f"aud {list(token.aud)!r}")


def check_lifetime(token: VerifiedToken, policy: VerificationPolicy, now: float) -> None:
    """RFC 7519 §4.1.4/§4.1.5: ``now < exp``, ``now >= nbf``, ``iat`` not in the future,
    each with ``policy.leeway`` seconds of slack."""
    leeway = policy.leeway
    if now >= token.exp + leeway:
        raise Denied(Reason.EXPIRED, f"exp {token.exp}")
    if token.nbf is not None and now + leeway < token.nbf:
        raise Denied(Reason.NOT_YET_VALID, f"nbf {token.nbf}")
    if now + leeway < token.iat:
        raise Denied(Reason.NOT_YET_VALID, f"iat {token.iat}")


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
