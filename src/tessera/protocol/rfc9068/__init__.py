"""JWT Profile for OAuth 2.0 Access Tokens — RFC 9068, https://www.rfc-editor.org/rfc/rfc9068

Issues ``typ: at+jwt`` access tokens with the claims of DESIGN §2 (``access_token``) and
validates them (``validator``: the one validator of the identity service and the SDK;
``token``: the verified token and the reasons a token is refused).

The issuer is loaded on first use: the SDK imports ``validator`` and ``token`` without
pulling the identity service's key ring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tessera.protocol.rfc9068.access_token import AccessTokenClaims, AccessTokenIssuer

__all__ = ["AccessTokenClaims", "AccessTokenIssuer"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tessera.protocol.rfc9068 import access_token
        return getattr(access_token, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
