"""OAuth 2.0 Token Exchange — RFC 8693, https://www.rfc-editor.org/rfc/rfc8693

Narrows an access token hop by hop: a subset of its scopes, one audience, a life no
longer than what the subject token has left, ``sid``/``sv`` kept so revoking the session
revokes every token derived from it, and ``act`` recording who acts for whom.
"""

from tessera.protocol.rfc8693.exchange import (
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_JWT,
    TokenExchangeGrant,
)

__all__ = ["TOKEN_TYPE_ACCESS_TOKEN", "TOKEN_TYPE_JWT", "TokenExchangeGrant"]
