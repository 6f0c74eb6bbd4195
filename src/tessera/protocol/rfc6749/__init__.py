"""The OAuth 2.0 Authorization Framework — RFC 6749, https://www.rfc-editor.org/rfc/rfc6749

The token endpoint (§3.2) dispatches to one handler per grant type (``grants/``); the
authorization endpoint (§3.1) validates requests and issues codes.
"""

from tessera.protocol.rfc6749.token_endpoint import GrantHandler, TokenEndpoint, TokenResult

__all__ = ["GrantHandler", "TokenEndpoint", "TokenResult"]
