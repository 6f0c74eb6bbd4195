"""OAuth clients: what a registered client may do.

Rules here are pure: which grants, scopes, audiences and redirect URIs a client holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "GRANT_ALIASES",
    "GRANT_AUTHORIZATION_CODE",
    "GRANT_CLIENT_CREDENTIALS",
    "GRANT_DEVICE_CODE",
    "GRANT_REFRESH_TOKEN",
    "GRANT_TOKEN_EXCHANGE",
    "KNOWN_GRANTS",
    "Client",
]

GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_REFRESH_TOKEN = "refresh_token"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
"""RFC 8628 §3.4."""
KNOWN_GRANTS = frozenset(
    {GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN, GRANT_TOKEN_EXCHANGE,
     GRANT_DEVICE_CODE}
)
GRANT_ALIASES = {"device_code": GRANT_DEVICE_CODE, "token_exchange": GRANT_TOKEN_EXCHANGE}
"""Short names accepted where an operator types a grant type (``clients create --grant``)."""


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client. ``secret_hash`` is SHA-256 of the secret; public clients have none."""

    client_id: str
    name: str
    public: bool
    grant_types: frozenset[str]
    scopes: frozenset[str]
    audiences: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    secret_hash: str | None = None
    tenant_id: str | None = None
    disabled: bool = False
    created_at: float = 0.0
    third_party: bool = False
    """A third-party client gets the user's consent (once per scope set) before a code."""
    subject_audiences: tuple[str, ...] = ()
    """Token exchange trust: besides tokens naming it (``aud`` = its client_id) or issued
    to it, the client may exchange subject tokens addressed to these audiences (the
    resources it fronts, e.g. a gateway's edge audience)."""
    extra: dict[str, str] = field(default_factory=dict)

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def allows_redirect_uri(self, uri: str) -> bool:
        """Exact string match (RFC 9700 §4.1.3): no prefixes, no wildcards."""
        return uri in self.redirect_uris
