"""Revocation endpoint (RFC 7009 §2).

- Refresh token: its whole family ends, and with it the access tokens issued from it
  (§2.1 SHOULD; ``token_state`` reports them inactive).
- Access token (JWT): its ``jti`` is revoked until the token's expiry, as an outbox event
  every verifier learns.
- Unknown, expired or already revoked tokens, and tokens of another tenant than the
  caller's: 200 (§2.2), so the endpoint reveals nothing.
- An access token an administrator obtained an impersonation with: the impersonation
  session ends with it. A token issued to another client is refused (§2.1) with ``invalid_grant``
  (RFC 6749 §5.2: "…or was issued to another client"); only a valid token gets that far.
"""

from __future__ import annotations

import logging

from tessera.application import lifecycle
from tessera.application.ports import AuditTrail
from tessera.application.standing import client_tenant
from tessera.application.transaction import appending, transaction
from tessera.core.clients import Client
from tessera.core.clock import Clock
from tessera.core.secrets import token_hash
from tessera.observability import events
from tessera.protocol.clients import ClientAuthenticator
from tessera.protocol.errors import (
    InvalidGrant,
    OAuthError,
    TemporarilyUnavailable,
    UnsupportedTokenType,
)
from tessera.protocol.http import (
    OAuthRequest,
    OAuthResponse,
    error_response,
    json_response,
    parse_params,
)
from tessera.protocol.rfc9068.access_token import AccessTokenIssuer
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.store.ports import Store, StoreError

__all__ = ["RevocationEndpoint"]

_log = logging.getLogger("tessera.protocol")
_HINTS = ("access_token", "refresh_token")


class RevocationEndpoint:
    def __init__(self, authenticator: ClientAuthenticator, tokens: AccessTokenIssuer,
                 store: Store, audit: AuditTrail, clock: Clock, *, leeway: float,
                 max_body: int) -> None:
        self._authenticator = authenticator
        self._tokens = tokens
        self._store = store
        self._audit = audit
        self._clock = clock
        self._leeway = leeway
        self._max_body = max_body

    async def handle(self, request: OAuthRequest) -> OAuthResponse:
        try:
            params = parse_params(request, max_body=self._max_body)
            client = await self._authenticator.authenticate(request, params)
            token = params.require("token")
            hint = params.get("token_type_hint")
            if hint is not None and hint not in _HINTS:
                raise UnsupportedTokenType("token_type_hint is not supported")
            if token.count(".") == 2:
                await self._revoke_access(token, client)
            elif not await self._revoke_refresh(token, client):
                await self._revoke_access(token, client)  # a reference access token
            return json_response({}, status=200)
        except OAuthError as exc:
            return error_response(exc)
        except StoreError as exc:
            _log.warning("revocation failed on the store: %s", exc)
            return error_response(TemporarilyUnavailable("try again shortly"))

    async def _revoke_access(self, token: str, client: Client) -> None:
        try:
            verified = await self._tokens.resolve(token, now=self._clock.now(),
                                                  leeway=self._leeway)
        except TokenRejected:
            return  # invalid or expired: nothing to revoke (§2.2)
        if verified.tid != client_tenant(client):
            return  # another tenant's token is nothing here: as unknown (§2.2)
        if verified.client_id != client.client_id:
            raise InvalidGrant("the token was not issued to this client")
        # Only a user's token can have been an actor token (impersonation opens under its
        # sid): the revocation of any other reads nothing and commits in one step.
        actor = verified.sid is not None
        async with (transaction if actor else appending)(self._store, self._audit) as tx:
            await lifecycle.revoke_access_token(
                tx, verified.jti, at=self._clock.now(), expires_at=verified.exp,
                client_id=client.client_id, token_digest=token_hash(token))
            if actor:
                await lifecycle.end_impersonations(
                    tx, at=self._clock.now(), jti=verified.jti, reason="actor_token_revoked",
                    token_ttl=self._tokens.ttl)

    async def _revoke_refresh(self, token: str, client: Client) -> bool:
        """False if ``token`` is no refresh token we know (it may be a reference)."""
        digest = token_hash(token)
        async with transaction(self._store, self._audit) as tx:
            row = await tx.uow.refresh.get_token(digest)
            family = await tx.uow.refresh.get_family(row.family_id) if row else None
            if family is None:
                return False
            if family.tenant_id != client_tenant(client):
                return True
            if family.client_id != client.client_id:
                raise InvalidGrant("the token was not issued to this client")
            if await lifecycle.revoke_family(tx, family.family_id, at=self._clock.now(),
                                             reason="revoked_by_client",
                                             token_ttl=self._tokens.ttl):
                tx.audit(events.TOKEN_REVOKED, client_id=client.client_id, token_hash=digest,
                         family_id=family.family_id, sid=family.sid, user_id=family.user_id,
                         token_type="refresh_token")
        return True
