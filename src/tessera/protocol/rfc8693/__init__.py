"""OAuth 2.0 Token Exchange — RFC 8693, https://www.rfc-editor.org/rfc/rfc8693

Narrows a credential hop by hop: a subset of its scopes, one audience, a life no longer
than what the subject has left, ``sid``/``sv`` kept so revoking the session revokes every
token derived from it, ``act`` recording who acts for whom, ``may_act`` honoured, and a
per-client policy of audiences, scopes, lifetime and chain depth. Audited admin
impersonation (``impersonation``) is an exchange whose subject is a user id.
"""

from tessera.protocol.rfc8693.exchange import TokenExchangeGrant
from tessera.protocol.rfc8693.impersonation import (
    TOKEN_TYPE_USER_ID,
    Impersonation,
    ImpersonationPolicy,
)
from tessera.protocol.rfc8693.policy import DEFAULT_MAX_ACT_DEPTH, ExchangePolicy
from tessera.protocol.rfc8693.subjects import (
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_TOKEN,
    TOKEN_TYPE_JWT,
    TOKEN_TYPE_REFRESH_TOKEN,
    SubjectLoader,
)

__all__ = ["DEFAULT_MAX_ACT_DEPTH", "TOKEN_TYPE_ACCESS_TOKEN", "TOKEN_TYPE_ID_TOKEN",
           "TOKEN_TYPE_JWT", "TOKEN_TYPE_REFRESH_TOKEN", "TOKEN_TYPE_USER_ID",
           "ExchangePolicy", "Impersonation", "ImpersonationPolicy", "SubjectLoader",
           "TokenExchangeGrant"]
