"""The device authorization endpoint (RFC 8628 §3.1, §3.2):

    parse_params → authenticate_client (per client type, as at the token endpoint)
      → check_client_may_use (the device code grant) → check_scope → issue_codes → respond

Both codes are stored only as SHA-256 hashes; the user code is 8 characters of the
base-20 alphabet of §6.1 (``core.device``). A clash of either hash (astronomically rare
for the device code, possible for a user code) draws new codes.
"""

from __future__ import annotations

import logging

from tessera.application.ports import AuditTrail
from tessera.application.standing import client_tenant
from tessera.application.transaction import transaction
from tessera.core.clients import GRANT_DEVICE_CODE, Client
from tessera.core.clock import Clock
from tessera.core.device import DeviceCode, format_user_code, new_user_code
from tessera.core.scopes import format_scope
from tessera.core.secrets import new_secret, token_hash
from tessera.observability import events
from tessera.protocol.clients import ClientAuthenticator
from tessera.protocol.errors import OAuthError, TemporarilyUnavailable, UnauthorizedClient
from tessera.protocol.http import (
    OAuthRequest,
    OAuthResponse,
    error_response,
    json_response,
    parse_params,
)
from tessera.protocol.rfc6749.grants._shared import grant_scope, select_audience
from tessera.store.ports import Store, StoreError

__all__ = ["DeviceAuthorizationEndpoint"]

_log = logging.getLogger("tessera.protocol")
_ATTEMPTS = 5


class DeviceAuthorizationEndpoint:
    def __init__(self, authenticator: ClientAuthenticator, store: Store, audit: AuditTrail,
                 clock: Clock, *, issuer: str, code_ttl: int, interval: int,
                 max_body: int) -> None:
        self._authenticator = authenticator
        self._store = store
        self._audit = audit
        self._clock = clock
        self._issuer = issuer
        self._verification_uri = f"{issuer}/device"
        self._code_ttl = code_ttl
        self._interval = interval
        self._max_body = max_body

    async def handle(self, request: OAuthRequest) -> OAuthResponse:
        try:
            params = parse_params(request, max_body=self._max_body)
            client = await self._authenticator.authenticate(request, params)
            self._check_client_may_use(client)
            scope = grant_scope(params, client.scopes)
            audience = select_audience(params, client, self._issuer)
            device_code, user_code = await self._issue_codes(client, scope, audience,
                                                             request.client_host)
            return self._respond(device_code, user_code)
        except OAuthError as exc:
            if exc.detail:
                _log.info("device authorization refused: %s (%s)", exc.error, exc.detail)
            return error_response(exc)
        except StoreError as exc:
            _log.warning("device authorization failed on the store: %s", exc)
            return error_response(TemporarilyUnavailable("try again shortly"))

    @staticmethod
    def _check_client_may_use(client: Client) -> None:
        if not client.allows_grant(GRANT_DEVICE_CODE):
            raise UnauthorizedClient("the client may not use the device authorization grant")

    async def _issue_codes(self, client: Client, scope: frozenset[str],
                           audience: tuple[str, ...], address: str | None
                           ) -> tuple[str, str]:
        now = self._clock.now()
        for attempt in range(_ATTEMPTS):
            device_code, user_code = new_secret(), new_user_code()
            try:
                async with transaction(self._store, self._audit) as tx:
                    await tx.uow.device_codes.add(DeviceCode(
                        device_code_hash=token_hash(device_code),
                        user_code_hash=token_hash(user_code), client_id=client.client_id,
                        tenant_id=client_tenant(client), scope=scope, audience=audience,
                        created_at=now, expires_at=now + self._code_ttl,
                        interval=self._interval, client_address=(address or "")[:64] or None))
                    tx.audit(events.DEVICE_CODE_ISSUED, client_id=client.client_id,
                             tenant_id=client_tenant(client), scopes=format_scope(scope),
                             token_hash=token_hash(device_code))
                return device_code, user_code
            except StoreError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _respond(self, device_code: str, user_code: str) -> OAuthResponse:
        shown = format_user_code(user_code)
        return json_response({
            "device_code": device_code,
            "user_code": shown,
            "verification_uri": self._verification_uri,
            "verification_uri_complete": f"{self._verification_uri}?user_code={shown}",
            "expires_in": self._code_ttl,
            "interval": self._interval,
        })
