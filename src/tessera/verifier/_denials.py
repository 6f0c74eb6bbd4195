"""Denials beyond the token itself: no token, the wrong tenant or owner, nothing to verify with.

They extend ``Denied`` (so one ``except Denied`` catches every refusal) and add a
``label``: the stable string that decision events and metrics use as ``reason``::

    Denied                          label = reason.value ("expired", "stale_state", ...)
     ├── MissingToken               "missing_token"          401, RFC 6750 §3.1: no error code
     ├── Forbidden                  "wrong_tenant" | "not_owner"               403
     └── Unavailable                "keys_unavailable" | "introspection_unavailable"  503
"""

from __future__ import annotations

from typing import Final

from tessera.verifier._errors import Denied, Reason
from tessera.verifier._token import VerifiedToken

__all__ = [
    "Forbidden",
    "MissingToken",
    "Unavailable",
    "check_owner",
    "check_tenant",
    "label_of",
]

WRONG_TENANT: Final = "wrong_tenant"
NOT_OWNER: Final = "not_owner"
KEYS_UNAVAILABLE: Final = "keys_unavailable"
INTROSPECTION_UNAVAILABLE: Final = "introspection_unavailable"


class MissingToken(Denied):
    """The request carries no bearer token (RFC 6750 §3.1: answer without an error code)."""

    label = "missing_token"

    def __init__(self) -> None:
        super().__init__(Reason.MALFORMED, "no bearer token")

    @property
    def description(self) -> str:
        return "An access token is required."


class Forbidden(Denied):
    """A valid token that does not reach this resource: another tenant's or another
    subject's. Sent as RFC 6750 ``insufficient_scope`` (403)."""

    def __init__(self, label: str, detail: str = "") -> None:
        super().__init__(Reason.INSUFFICIENT_SCOPE, detail)
        self.label = label

    @property
    def description(self) -> str:
        return "The access token does not grant access to this resource."


class Unavailable(Denied):
    """The verifier cannot decide now (no keys, introspection unreachable): 503."""

    def __init__(self, label: str, detail: str = "") -> None:
        super().__init__(Reason.STALE_STATE, detail)
        self.label = label

    @property
    def description(self) -> str:
        return "The access token cannot be verified right now; try again later."


def label_of(denied: Denied) -> str:
    """The decision ``reason`` for a denial (metrics label, audit field)."""
    label = getattr(denied, "label", None)
    return label if isinstance(label, str) else denied.reason.value


def check_tenant(token: VerifiedToken, tenant_id: str | None) -> None:
    """The token's ``tid`` must be ``tenant_id`` (when one is required)."""
    if tenant_id is not None and token.tid != tenant_id:
        raise Forbidden(WRONG_TENANT, "tid does not match the requested tenant")


def check_owner(token: VerifiedToken, owner: str | None) -> None:
    """The token's ``sub`` must be the resource owner (when one is required)."""
    if owner is not None and token.sub != owner:
        raise Forbidden(NOT_OWNER, "sub is not the resource owner")
