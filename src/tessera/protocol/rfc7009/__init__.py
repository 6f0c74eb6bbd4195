"""OAuth 2.0 Token Revocation — RFC 7009, https://www.rfc-editor.org/rfc/rfc7009"""

from tessera.protocol.rfc7009.revocation import RevocationEndpoint

__all__ = ["RevocationEndpoint"]
