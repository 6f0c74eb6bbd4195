"""End users (resource owners) and tenants."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TENANT", "TOTP", "User"]

DEFAULT_TENANT = "default"
TOTP = "totp"
"""``user_factors.kind`` of a TOTP (RFC 6238) second factor."""


@dataclass(frozen=True, slots=True)
class User:
    """A user. ``password_hash`` is an argon2id PHC string, never a password."""

    user_id: str
    username: str
    tenant_id: str
    password_hash: str
    disabled: bool = False
    created_at: float = 0.0
    deleted_at: float | None = None
    """Deleted users stay as a tombstone (sessions and the audit trail name them): no
    password, no factors, no roles, disabled, and their username is free again."""
