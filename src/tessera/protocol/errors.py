"""OAuth errors (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 8707 §2).

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
    ├── TooManyRequests             429 slow_down
    └── TemporarilyUnavailable      503 temporarily_unavailable
"""

from __future__ import annotations

__all__ = [
    "AccessDenied", "InsufficientScope", "InvalidClient", "InvalidGrant", "InvalidRequest",
    "InvalidScope",
    "InvalidTarget", "InvalidToken", "OAuthError", "TemporarilyUnavailable", "TooManyRequests",
    "UnauthorizedClient", "UnsupportedGrantType", "UnsupportedResponseType",
    "UnsupportedTokenType",
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


class TooManyRequests(OAuthError):
    error, status = "slow_down", 429


class TemporarilyUnavailable(OAuthError):
    error, status = "temporarily_unavailable", 503
