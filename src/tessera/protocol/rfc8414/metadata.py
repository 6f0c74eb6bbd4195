"""The metadata document: only what this server really supports is advertised."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tessera.core.acr import DEFAULT_ACR_LEVELS
from tessera.protocol.client_assertion import ASSERTION_ALGS
from tessera.protocol.clients import ASSERTION_AUTH_METHODS, AUTH_METHODS

__all__ = ["server_metadata"]


def server_metadata(issuer: str, *, grant_types: list[str], signing_alg: str,
                    scopes: list[str], dpop_algs: Sequence[str] | None = None,
                    id_token_algs: Sequence[str] | None = None,
                    device_authorization: bool = False) -> dict[str, Any]:
    """``signing_alg``: the access token algorithm; ``id_token_algs``: the ID token ones
    (RS256 by default, as OIDC Core §15.1 requires). ``dpop_algs``: the DPoP proof
    algorithms accepted (RFC 9449 §5.1); None when DPoP is off, which leaves
    ``dpop_signing_alg_values_supported`` out. ``device_authorization`` advertises
    ``device_authorization_endpoint`` (RFC 8628 §4)."""
    methods = [*AUTH_METHODS, *ASSERTION_AUTH_METHODS]
    confidential_methods = [m for m in methods if m != "none"]
    metadata: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "end_session_endpoint": f"{issuer}/logout",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "subject_types_supported": ["public"],
        "scopes_supported": sorted({"openid", *scopes}),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr",
                             "sid", "nonce", "preferred_username", "tid"],
        "acr_values_supported": list(DEFAULT_ACR_LEVELS),
        "token_endpoint_auth_methods_supported": methods,
        # RFC 7523 §2.2 / OIDC Core §9: the algorithms a private_key_jwt may be signed with
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": confidential_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": list(id_token_algs or [signing_alg]),
        "access_token_signing_alg_values_supported": [signing_alg],
        # RFC 9701 §7: JWT introspection responses (Accept: application/token-introspection+jwt)
        "introspection_signing_alg_values_supported": [signing_alg],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": False,
    }
    if device_authorization:
        metadata["device_authorization_endpoint"] = f"{issuer}/device_authorization"
    # RFC 8705 §3.3 / §5: certificate-bound tokens; the client certificate is asked for on
    # the same listener (or forwarded by a trusted proxy), so the aliases are the same URLs
    metadata["tls_client_certificate_bound_access_tokens"] = True
    metadata["mtls_endpoint_aliases"] = {
        name: metadata[name] for name in ("token_endpoint", "introspection_endpoint",
                                          "revocation_endpoint", "userinfo_endpoint")}
    if dpop_algs:
        metadata["dpop_signing_alg_values_supported"] = list(dpop_algs)
    return metadata
