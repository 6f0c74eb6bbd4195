"""Upstream identity providers (federation): the provider a tenant trusts, the link from
an upstream subject to a local user, and the normalised profile that link carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ExternalIdentity", "IdentityProvider", "UpstreamSession", "profile_claims"]

_EMAIL_CLAIMS = frozenset({"email", "email_verified"})


def profile_claims(profile: dict[str, Any] | None, scopes: frozenset[str] | set[str]
                   ) -> dict[str, Any]:
    """The normalised upstream claims an ID token or userinfo answer may carry for these
    scopes (OIDC Core §5.4): ``email`` gives ``email``/``email_verified``, ``profile``
    gives ``name``, ``groups``, ``roles``, ``department`` and the custom claims."""
    if not profile:
        return {}
    out: dict[str, Any] = {}
    for name, value in profile.items():
        if name in _EMAIL_CLAIMS:
            if "email" in scopes:
                out[name] = value
        elif "profile" in scopes:
            out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    """An upstream OpenID Connect provider of one tenant. ``sealed_secret`` is the client
    secret sealed under the KEK (never in clear at rest); ``mapping`` the validated claim
    mapping as a plain dict (``identity.federation.mapping.ClaimMapping``)."""

    idp_id: str
    tenant_id: str
    name: str
    issuer: str
    client_id: str
    sealed_secret: str
    scope: str
    mapping: dict[str, Any] = field(default_factory=dict)
    disabled: bool = False
    created_at: float = 0.0
    ssf_poll_url: str | None = None
    """The transmitter's RFC 8936 poll endpoint, when events are polled (not pushed)."""


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """The link from an upstream subject (``idp_id``, ``subject``) to a local user, with
    the last normalised profile seen at a login (``profile``) and its hash (a change
    bumps the session versions of the user)."""

    idp_id: str
    subject: str
    user_id: str
    profile: dict[str, Any]
    profile_hash: str
    linked_by: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class UpstreamSession:
    """A local session opened through an upstream login: the upstream ``sub`` and, when
    the provider sent one, its ``sid`` (back-channel logout names either)."""

    sid: str
    idp_id: str
    subject: str
    upstream_sid: str | None
