"""OpenID Connect Core 1.0, Discovery 1.0 and RP-Initiated Logout 1.0 —
https://openid.net/specs/openid-connect-core-1_0.html
"""

from tessera.protocol.oidc.id_token import IdTokenIssuer

__all__ = ["IdTokenIssuer"]
