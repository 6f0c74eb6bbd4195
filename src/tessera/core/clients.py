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
    "KEY_AUTH_METHODS",
    "KNOWN_GRANTS",
    "TOKEN_FORMATS",
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

KEY_AUTH_METHODS = frozenset({"private_key_jwt", "workload_identity", "tls_client_auth",
                              "self_signed_tls_client_auth"})
"""Client authentication without a shared secret."""
TOKEN_FORMATS = frozenset({"jwt", "reference"})


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
    auth_method: str | None = None
    """How the client authenticates at the token endpoint (OIDC Core §9): None means the
    historical default, ``none`` for public clients and a shared secret otherwise;
    ``private_key_jwt`` (RFC 7523 §2.2, keys in ``jwks``/``jwks_uri``),
    ``workload_identity`` (a JWT-SVID or Kubernetes service-account token checked
    against ``workload_*``), ``tls_client_auth`` (RFC 8705 §2.1, ``tls_subject_dn``) or
    ``self_signed_tls_client_auth`` (§2.2, the certificate's key in ``jwks``)."""
    access_token_format: str = "jwt"
    """``jwt`` (RFC 9068) or ``reference``: an opaque handle valid through introspection."""
    jwks: str | None = None
    """The client's public keys as a JWK Set document (JSON text)."""
    jwks_uri: str | None = None
    workload_issuer: str | None = None
    workload_subject: str | None = None
    """The workload identity's ``sub`` (``spiffe://…`` or ``system:serviceaccount:ns:name``)."""
    workload_jwks: str | None = None
    workload_jwks_uri: str | None = None
    tls_subject_dn: str | None = None
    """``tls_client_auth`` (RFC 8705 §2.1): the subject DN of the client's certificate."""

    @property
    def token_endpoint_auth_method(self) -> str:
        if self.auth_method is not None:
            return self.auth_method
        return "none" if self.public else "client_secret_basic"

    @property
    def uses_secret(self) -> bool:
        return self.auth_method is None and not self.public

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def allows_redirect_uri(self, uri: str) -> bool:
        """Exact string match (RFC 9700 §4.1.3): no prefixes, no wildcards."""
        return uri in self.redirect_uris
