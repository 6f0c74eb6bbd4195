"""OAuth 2.0 Token Introspection — RFC 7662, https://www.rfc-editor.org/rfc/rfc7662"""

from tessera.protocol.rfc7662.introspection import IntrospectionEndpoint

__all__ = ["IntrospectionEndpoint"]
