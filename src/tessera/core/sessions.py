"""Sessions: one login of one user, the unit logout and revocation act on.

A session carries a version ``sv``; bumping it (role change, password reset) makes every
token that carries an older ``sv`` stale without touching the tokens themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AuthorizationCode", "Session"]


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    user_id: str
    tenant_id: str
    sv: int
    acr: str
    amr: tuple[str, ...]
    auth_time: float
    created_at: float
    last_seen_at: float
    revoked_at: float | None = None
    revoke_reason: str | None = None
    user_agent: str | None = None
    actor_sid: str | None = None
    """Impersonation: the administrator's session this one acts under. Revoking or
    bumping that session ends this one."""
    actor_jti: str | None = None
    """Impersonation: the administrator's access token it was obtained with; revoking
    that token ends this session."""
    client_address: str | None = None
    """The address the session was opened from (shown on the user's sessions page)."""
    device_client_id: str | None = None
    """A device session (RFC 8628): the client of the device it was approved for."""

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """A one-time authorization code (stored by hash), bound to client, redirect and PKCE."""

    code_hash: str
    client_id: str
    sid: str
    user_id: str
    redirect_uri: str
    scope: frozenset[str]
    code_challenge: str | None
    nonce: str | None
    expires_at: float
    consumed_at: float | None = None
    family_id: str | None = None
