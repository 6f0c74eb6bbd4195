"""Audit event names: ``<noun>.<past-tense verb>`` (DESIGN §7, STYLE §12)."""

from __future__ import annotations

__all__ = [
    "ACCESS_ALLOWED",
    "ACCESS_DENIED",
    "ALL",
    "AUTH_STEP_UP_REQUIRED",
    "CLIENT_AUTH_FAILED",
    "CLIENT_CREATED",
    "CODE_ISSUED",
    "CODE_REUSE_DETECTED",
    "FACTOR_ENROLLED",
    "KEY_ROTATED",
    "LOGIN_FAILED",
    "REFRESH_REUSE_DETECTED",
    "SESSION_CREATED",
    "SESSION_IMPERSONATED",
    "SESSION_LOGOUT",
    "SESSION_REAUTHENTICATED",
    "SESSION_REVOKED",
    "SESSION_VERSION_BUMPED",
    "TENANT_REVOKED",
    "TOKEN_EXCHANGED",
    "TOKEN_INTROSPECTED",
    "TOKEN_ISSUED",
    "TOKEN_REFRESHED",
    "TOKEN_REVOKED",
    "USER_CREATED",
]

SESSION_CREATED = "session.created"
SESSION_IMPERSONATED = "session.impersonated"
SESSION_LOGOUT = "session.logout"
SESSION_REAUTHENTICATED = "session.reauthenticated"
SESSION_REVOKED = "session.revoked"
SESSION_VERSION_BUMPED = "session.version_bumped"
TENANT_REVOKED = "tenant.revoked"
TOKEN_ISSUED = "token.issued"
TOKEN_REFRESHED = "token.refreshed"
TOKEN_EXCHANGED = "token.exchanged"
TOKEN_REVOKED = "token.revoked"
TOKEN_INTROSPECTED = "token.introspected"
REFRESH_REUSE_DETECTED = "refresh.reuse_detected"
CODE_ISSUED = "code.issued"
CODE_REUSE_DETECTED = "code.reuse_detected"
LOGIN_FAILED = "login.failed"
CLIENT_AUTH_FAILED = "client.auth_failed"
CLIENT_CREATED = "client.created"
USER_CREATED = "user.created"
FACTOR_ENROLLED = "factor.enrolled"
AUTH_STEP_UP_REQUIRED = "auth.step_up_required"
KEY_ROTATED = "key.rotated"
ACCESS_ALLOWED = "access.allowed"
ACCESS_DENIED = "access.denied"

ALL = frozenset({
    SESSION_CREATED,
    SESSION_IMPERSONATED,
    SESSION_LOGOUT,
    SESSION_REAUTHENTICATED,
    SESSION_REVOKED,
    SESSION_VERSION_BUMPED,
    TENANT_REVOKED,
    TOKEN_ISSUED,
    TOKEN_REFRESHED,
    TOKEN_EXCHANGED,
    TOKEN_REVOKED,
    TOKEN_INTROSPECTED,
    REFRESH_REUSE_DETECTED,
    CODE_ISSUED,
    CODE_REUSE_DETECTED,
    LOGIN_FAILED,
    CLIENT_AUTH_FAILED,
    CLIENT_CREATED,
    USER_CREATED,
    FACTOR_ENROLLED,
    AUTH_STEP_UP_REQUIRED,
    KEY_ROTATED,
    ACCESS_ALLOWED,
    ACCESS_DENIED,
})
