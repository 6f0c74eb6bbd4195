"""Revocation events: one durable, sequenced record per state change verifiers must learn.

Kinds name the grain. ``key`` is the identifier at that grain (jti, sid, family_id,
user_id, tenant_id, client_id, kid). ``expires_at`` is when the entry stops mattering
(the latest expiry of any token it covers), so verifier state stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RevocationEvent", "RevocationKind"]


class RevocationKind:
    TOKEN_REVOKED = "token.revoked"
    SESSION_REVOKED = "session.revoked"
    FAMILY_REVOKED = "family.revoked"
    USER_REVOKED = "user.revoked"
    TENANT_REVOKED = "tenant.revoked"
    CLIENT_REVOKED = "client.revoked"
    SESSION_VERSION_BUMPED = "session.version_bumped"
    KEY_ROTATED = "key.rotated"

    ALL = frozenset({
        TOKEN_REVOKED, SESSION_REVOKED, FAMILY_REVOKED, USER_REVOKED, TENANT_REVOKED,
        CLIENT_REVOKED, SESSION_VERSION_BUMPED, KEY_ROTATED,
    })


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    kind: str
    key: str
    at: float
    expires_at: float
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    """Assigned by the store when the event is appended (monotonically increasing)."""
