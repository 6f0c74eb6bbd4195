"""Consent (OIDC Core §3.1.2.4): the scopes a user allowed a third-party client to have.

First-party clients need none. A third-party client asks once per scope set: a request
for scopes the user already allowed goes through without a screen, one for anything more
shows the screen again (for the whole set)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Consent", "missing_consent"]


@dataclass(frozen=True, slots=True)
class Consent:
    user_id: str
    client_id: str
    scope: frozenset[str]
    granted_at: float


def missing_consent(requested: frozenset[str], consent: Consent | None) -> frozenset[str]:
    """The requested scopes the user has not allowed yet (all of them without consent)."""
    return requested if consent is None else requested - consent.scope
