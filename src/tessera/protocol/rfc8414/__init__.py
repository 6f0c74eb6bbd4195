"""OAuth 2.0 Authorization Server Metadata — RFC 8414,
https://www.rfc-editor.org/rfc/rfc8414 (and OpenID Connect Discovery 1.0 §3)."""

from tessera.protocol.rfc8414.metadata import server_metadata

__all__ = ["server_metadata"]
