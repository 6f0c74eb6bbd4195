"""OAuth 2.0 / OpenID Connect, framework-free: endpoints take an ``OAuthRequest`` and
return an ``OAuthResponse``; the web layer only converts. One package per standard."""

from tessera.protocol.errors import OAuthError
from tessera.protocol.http import OAuthRequest, OAuthResponse

__all__ = ["OAuthError", "OAuthRequest", "OAuthResponse"]
