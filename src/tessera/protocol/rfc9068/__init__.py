"""JWT Profile for OAuth 2.0 Access Tokens — RFC 9068, https://www.rfc-editor.org/rfc/rfc9068

Issues ``typ: at+jwt`` access tokens with the claims of DESIGN §2 and validates them
for the identity service's own endpoints (introspection, userinfo, revocation).
"""

from tessera.protocol.rfc9068.access_token import AccessTokenClaims, AccessTokenIssuer

__all__ = ["AccessTokenClaims", "AccessTokenIssuer"]
