"""Verifier errors: one hierarchy, every rejection carries a machine-readable reason.

::

    VerifierError
     ├── Denied           the token is rejected; ``reason`` says why (a ``Reason``)
     ├── KeysUnavailable  no key set could be obtained (JWKS never fetched successfully)
     ├── InvalidJwks      a JWKS document is not a JSON object with a ``keys`` list
     └── InvalidEvent     a revocation event or snapshot does not have the documented shape

``Denied.description`` is safe to send to the client; ``Denied.detail`` is for logs only
(RFC 6750 §3 ``error_description`` vs. a debug cause).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Denied", "InvalidEvent", "InvalidJwks", "KeysUnavailable", "Reason", "VerifierError"]


class Reason(StrEnum):
    """Why a token was rejected. Values are stable: metrics and audit events use them."""

    MALFORMED = "malformed"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    BAD_ALGORITHM = "bad_algorithm"
    WRONG_TYP = "wrong_typ"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    TOKEN_REVOKED = "token_revoked"
    SESSION_REVOKED = "session_revoked"
    STALE_SESSION_VERSION = "stale_session_version"
    USER_REVOKED = "user_revoked"
    TENANT_REVOKED = "tenant_revoked"
    CLIENT_REVOKED = "client_revoked"
    FAMILY_REVOKED = "family_revoked"
    STALE_STATE = "stale_state"


_DESCRIPTIONS: dict[Reason, str] = {
    Reason.MALFORMED: "The access token is malformed.",
    Reason.UNKNOWN_KID: "The access token is signed with an unknown key.",
    Reason.BAD_SIGNATURE: "The access token signature is invalid.",
    Reason.BAD_ALGORITHM: "The access token algorithm is not allowed.",
    Reason.WRONG_TYP: "The token is not an access token.",
    Reason.WRONG_ISSUER: "The access token was issued by another issuer.",
    Reason.WRONG_AUDIENCE: "The access token is not meant for this service.",
    Reason.EXPIRED: "The access token expired.",
    Reason.NOT_YET_VALID: "The access token is not valid yet.",
    Reason.INSUFFICIENT_SCOPE: "The access token lacks a required scope.",
    Reason.TOKEN_REVOKED: "The access token was revoked.",
    Reason.SESSION_REVOKED: "The session was revoked.",
    Reason.STALE_SESSION_VERSION: "The session changed; obtain a new access token.",
    Reason.USER_REVOKED: "The access token was revoked.",
    Reason.TENANT_REVOKED: "The access token was revoked.",
    Reason.CLIENT_REVOKED: "The access token was revoked.",
    Reason.FAMILY_REVOKED: "The session was revoked.",
    Reason.STALE_STATE: "Revocation state is out of date; try again later.",
}


class VerifierError(Exception):
    """Base of every error the verifier raises."""


class Denied(VerifierError):
    """The token is rejected.

    ``error`` and ``status`` follow RFC 6750 §3.1: ``insufficient_scope`` is 403, a stale
    revocation state is the verifier's fault (503, fail closed), everything else is
    ``invalid_token`` with 401.
    """

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(reason.value if not detail else f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def error(self) -> str:
        if self.reason is Reason.INSUFFICIENT_SCOPE:
            return "insufficient_scope"
        if self.reason is Reason.STALE_STATE:
            return "temporarily_unavailable"
        return "invalid_token"

    @property
    def status(self) -> int:
        if self.reason is Reason.INSUFFICIENT_SCOPE:
            return 403
        if self.reason is Reason.STALE_STATE:
            return 503
        return 401

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self.reason]


class KeysUnavailable(VerifierError):
    """No verification keys: the JWKS was never fetched successfully."""


class InvalidEvent(VerifierError):
    """A revocation event or snapshot does not have the documented shape."""


class InvalidJwks(VerifierError):
    """A JWKS document is not a JSON object with a ``keys`` list of usable keys."""
