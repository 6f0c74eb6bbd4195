"""Client Credentials Grant — RFC 6749 §4.4. Confidential clients only; no refresh token
(§4.4.3)."""

from __future__ import annotations

from tessera.application.ports import AuditTrail
from tessera.core.clients import GRANT_CLIENT_CREDENTIALS, Client
from tessera.core.clock import Clock
from tessera.core.scopes import format_scope
from tessera.core.secrets import token_hash
from tessera.core.users import DEFAULT_TENANT
from tessera.observability import events
from tessera.protocol.errors import UnauthorizedClient
from tessera.protocol.http import OAuthRequest, Params
from tessera.protocol.rfc6749.grants._shared import grant_scope, select_audience, token_type
from tessera.protocol.rfc6749.token_endpoint import TokenResult
from tessera.protocol.rfc9068.access_token import AccessTokenClaims, AccessTokenIssuer, new_jti

__all__ = ["ClientCredentialsGrant"]


class ClientCredentialsGrant:
    grant_type = GRANT_CLIENT_CREDENTIALS

    def __init__(self, tokens: AccessTokenIssuer, audit: AuditTrail, clock: Clock,
                 *, default_audience: str) -> None:
        self._tokens = tokens
        self._audit = audit
        self._clock = clock
        self._default_audience = default_audience

    async def handle(self, request: OAuthRequest, params: Params, client: Client, *,
                     jkt: str | None = None) -> TokenResult:
        if client.public:
            raise UnauthorizedClient("public clients cannot use client_credentials")
        scope = grant_scope(params, client.scopes)
        audience = select_audience(params, client, self._default_audience)
        now = int(self._clock.now())
        claims = AccessTokenClaims(
            sub=client.client_id, client_id=client.client_id, audience=audience, scope=scope,
            iat=now, exp=now + self._tokens.ttl, jti=new_jti(),
            tenant_id=client.tenant_id or DEFAULT_TENANT, jkt=jkt,
        )
        token = await self._tokens.issue(claims, client, request)
        await self._audit.record(
            events.TOKEN_ISSUED, grant_type=self.grant_type, client_id=client.client_id,
            tenant_id=claims.tenant_id, token_hash=token_hash(token),
            jti=claims.jti, audience=list(audience), scopes=format_scope(scope), jkt=jkt,
        )
        return TokenResult(access_token=token, expires_in=self._tokens.ttl, scope=scope,
                           token_type=token_type(jkt))
