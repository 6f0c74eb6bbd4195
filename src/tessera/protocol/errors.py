"""OAuth errors (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 8707 §2, RFC 9449 §5,
§7.1, §8).

    OAuthError                      error, status, description (sent), detail (logged only)
    ├── InvalidRequest              400 invalid_request
    ├── InvalidClient               401 invalid_client (+ WWW-Authenticate for Basic)
    ├── InvalidGrant                400 invalid_grant
    ├── UnauthorizedClient          400 unauthorized_client
    ├── UnsupportedGrantType        400 unsupported_grant_type
    ├── UnsupportedResponseType     400 unsupported_response_type
    ├── InvalidScope                400 invalid_scope
    ├── InvalidTarget               400 invalid_target
    ├── UnsupportedTokenType        400 unsupported_token_type
    ├── InvalidToken                401 invalid_token (bearer resource errors)
    ├── InsufficientScope           403 insufficient_scope (RFC 6750 §3.1)
    ├── AccessDenied                403 access_denied
    ├── InvalidDPoPProof            400 invalid_dpop_proof (401 at resources)
    ├── UseDPoPNonce                400 use_dpop_nonce (401 at resources) + DPoP-Nonce
    ├── TooManyRequests             429 slow_down
    ├── AuthorizationPending        400 authorization_pending (RFC 8628 §3.5)
    ├── SlowDown                    400 slow_down (RFC 8628 §3.5: poll less often)
    ├── ExpiredToken                400 expired_token (RFC 8628 §3.5)
    ├── DeviceAccessDenied          400 access_denied (RFC 8628 §3.5: the user said no)
    └── TemporarilyUnavailable      503 temporarily_unavailable
"""

from __future__ import annotations

__all__ = [
    "AccessDenied", "AuthorizationPending", "DeviceAccessDenied", "ExpiredToken",
    "InsufficientScope", "InvalidClient", "InvalidDPoPProof", "InvalidGrant",
    "InvalidRequest", "InvalidScope", "InvalidTarget", "InvalidToken", "OAuthError", "SlowDown",
    "TemporarilyUnavailable", "TooManyRequests", "UnauthorizedClient", "UnsupportedGrantType",
    "UnsupportedResponseType", "UnsupportedTokenType", "UseDPoPNonce",
]


class OAuthError(Exception):
    error = "server_error"
    status = 500

    def __init__(self, description: str, *, detail: str = "") -> None:
        super().__init__(description)
        self.description = description
        self.detail = detail
        """Why, for the log; never sent to the client."""

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

    def headers(self) -> dict[str, str]:
        """Response headers this error adds (lower-case names); none by default."""
        return {}


class InvalidRequest(OAuthError):
    error, status = "invalid_request", 400


class InvalidClient(OAuthError):
    error, status = "invalid_client", 401

    def __init__(self, description: str, *, detail: str = "", basic: bool = False) -> None:
        super().__init__(description, detail=detail)
        self.basic = basic
        """The client tried HTTP Basic: answer with a Basic challenge (RFC 6749 §5.2)."""


class InvalidGrant(OAuthError):
    error, status = "invalid_grant", 400


class UnauthorizedClient(OAuthError):
    error, status = "unauthorized_client", 400


class UnsupportedGrantType(OAuthError):
    error, status = "unsupported_grant_type", 400


class UnsupportedResponseType(OAuthError):
    error, status = "unsupported_response_type", 400


class InvalidScope(OAuthError):
    error, status = "invalid_scope", 400


class InvalidTarget(OAuthError):
    error, status = "invalid_target", 400


class UnsupportedTokenType(OAuthError):
    error, status = "unsupported_token_type", 400


class InvalidToken(OAuthError):
    error, status = "invalid_token", 401


class InsufficientScope(OAuthError):
    error, status = "insufficient_scope", 403


class AccessDenied(OAuthError):
    error, status = "access_denied", 403


class InvalidDPoPProof(OAuthError):
    """RFC 9449 §5 (token endpoint, 400) and §7.1 (resources, ``status=401`` with a
    ``challenge``): the DPoP proof is not acceptable."""

    error, status = "invalid_dpop_proof", 400

    def __init__(self, description: str, *, detail: str = "", status: int | None = None,
                 challenge: str | None = None, nonce: str | None = None) -> None:
        super().__init__(description, detail=detail)
        if status is not None:
            self.status = status
        self.challenge = challenge
        """``WWW-Authenticate`` value (resources answer with a DPoP challenge)."""
        self.nonce = nonce
        """A fresh server nonce to send as ``DPoP-Nonce``."""

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.challenge is not None:
            headers["www-authenticate"] = self.challenge
        if self.nonce is not None:
            headers["dpop-nonce"] = self.nonce
        return headers


class UseDPoPNonce(InvalidDPoPProof):
    """RFC 9449 §8 (400) / §9 (401): send the proof again with the nonce in
    ``DPoP-Nonce``."""

    error = "use_dpop_nonce"


class TooManyRequests(OAuthError):
    error, status = "slow_down", 429


class AuthorizationPending(OAuthError):
    error, status = "authorization_pending", 400


class SlowDown(OAuthError):
    """RFC 8628 §3.5 at the token endpoint (400, unlike ``TooManyRequests``)."""

    error, status = "slow_down", 400


class ExpiredToken(OAuthError):
    error, status = "expired_token", 400


class DeviceAccessDenied(AccessDenied):
    """RFC 8628 §3.5: the user denied the device; a token endpoint error, so 400."""

    status = 400


class TemporarilyUnavailable(OAuthError):
    error, status = "temporarily_unavailable", 503
