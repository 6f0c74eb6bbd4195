"""One handler per grant type, registered by its ``grant_type``."""

from tessera.protocol.rfc6749.grants.authorization_code import AuthorizationCodeGrant
from tessera.protocol.rfc6749.grants.client_credentials import ClientCredentialsGrant
from tessera.protocol.rfc6749.grants.refresh_token import RefreshTokenGrant

__all__ = ["AuthorizationCodeGrant", "ClientCredentialsGrant", "RefreshTokenGrant"]
