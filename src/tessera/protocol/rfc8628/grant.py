"""Device Access Token Request — RFC 8628 §3.4, §3.5: the device polls the token endpoint
with its device code.

    poll (recorded even when the answer is an error) →
      unknown or another client's code          invalid_grant
      expired                                   expired_token
      denied by the user                        access_denied
      pending, polled sooner than ``interval``  slow_down (and the interval grows by 5 s)
      pending                                   authorization_pending
      approved → consume (once) → check the session and the user → issue tokens
      already used                              invalid_grant

The tokens belong to the session opened when the user approved the device: it is listed,
bounded and revoked like any other (``/account/sessions``, ``tessera sessions``), and
ending it ends the device's refresh family. Privileged scopes are narrowed to the user's
roles at issuance, as for an authorization code.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.application.ports import AuditTrail
from tessera.application.standing import NotInGoodStanding, check_user, client_tenant
from tessera.application.transaction import Transaction, transaction
from tessera.core.clients import GRANT_DEVICE_CODE, GRANT_REFRESH_TOKEN, Client
from tessera.core.clock import Clock
from tessera.core.device import APPROVED, DENIED, PENDING, DeviceCode
from tessera.core.refresh import RefreshFamily, RefreshToken
from tessera.core.roles import narrow_to_entitlement
from tessera.core.scopes import format_scope
from tessera.core.secrets import new_id, new_secret, token_hash
from tessera.core.sessions import Session
from tessera.observability import events
from tessera.protocol.errors import (
    AuthorizationPending,
    DeviceAccessDenied,
    ExpiredToken,
    InvalidGrant,
    OAuthError,
    SlowDown,
)
from tessera.protocol.http import OAuthRequest, Params
from tessera.protocol.oidc.id_token import IdTokenIssuer
from tessera.protocol.rfc6749.grants._shared import token_type
from tessera.protocol.rfc6749.token_endpoint import TokenResult
from tessera.protocol.rfc9068.access_token import AccessTokenClaims, AccessTokenIssuer, new_jti
from tessera.store.ports import Store

__all__ = ["SLOW_DOWN_STEP", "DeviceCodeGrant"]

SLOW_DOWN_STEP = 5
"""RFC 8628 §3.5: on ``slow_down`` the interval grows by 5 seconds."""


@dataclass(frozen=True, slots=True)
class _Issued:
    session: Session
    claims: AccessTokenClaims
    refresh_token: str | None
    scope: frozenset[str]


class DeviceCodeGrant:
    grant_type = GRANT_DEVICE_CODE

    def __init__(self, store: Store, tokens: AccessTokenIssuer, id_tokens: IdTokenIssuer,
                 audit: AuditTrail, clock: Clock, *, refresh_ttl: int,
                 family_ttl: int) -> None:
        self._store = store
        self._tokens = tokens
        self._id_tokens = id_tokens
        self._audit = audit
        self._clock = clock
        self._refresh_ttl = refresh_ttl
        self._family_ttl = family_ttl

    async def handle(self, request: OAuthRequest, params: Params, client: Client, *,
                     jkt: str | None = None) -> TokenResult:
        device_code = params.require("device_code")
        refusal: OAuthError | None = None
        async with transaction(self._store, self._audit) as tx:
            try:
                issued = await self._redeem(tx, device_code, client, jkt)
            except (AuthorizationPending, SlowDown, ExpiredToken, DeviceAccessDenied) as exc:
                refusal, issued = exc, None  # the poll itself is recorded: commit it
        if refusal is not None or issued is None:
            assert refusal is not None
            raise refusal
        access_token = self._tokens.sign(issued.claims)
        id_token = None
        if "openid" in issued.scope:
            id_token = self._id_tokens.sign(
                sub=issued.session.user_id, client_id=client.client_id,
                now=issued.claims.iat, auth_time=issued.session.auth_time,
                sid=issued.session.sid, acr=issued.session.acr, amr=issued.session.amr,
                nonce=None, access_token=access_token)
        return TokenResult(access_token=access_token, expires_in=self._tokens.ttl,
                           scope=issued.scope, refresh_token=issued.refresh_token,
                           id_token=id_token, token_type=token_type(jkt))

    async def _redeem(self, tx: Transaction, device_code: str, client: Client,
                      jkt: str | None) -> _Issued:
        now = self._clock.now()
        code_hash = token_hash(device_code)
        polled = await tx.uow.device_codes.poll(code_hash, at=now)
        if polled is None or polled.client_id != client.client_id:
            raise InvalidGrant("the device code is invalid",
                               detail="unknown code" if polled is None else "another client's")
        if polled.expired(now):
            raise ExpiredToken("the device code has expired; start again")
        if polled.status == DENIED:
            raise DeviceAccessDenied("the user denied the request")
        if polled.status == PENDING:
            await self._check_pace(tx, polled, now)
            raise AuthorizationPending("the user has not approved the request yet")
        if polled.status != APPROVED or not await tx.uow.device_codes.consume(code_hash, at=now):
            raise InvalidGrant("the device code is invalid", detail="used already")
        return await self._issue(tx, polled, client, now, jkt)

    @staticmethod
    async def _check_pace(tx: Transaction, polled: DeviceCode, now: float) -> None:
        """§3.5: a poll sooner than the interval after the previous one is told to slow
        down, and the interval grows for every later poll."""
        if polled.last_polled_at is not None and now - polled.last_polled_at < polled.interval:
            await tx.uow.device_codes.slow_down(polled.device_code_hash, by=SLOW_DOWN_STEP)
            raise SlowDown(f"poll at most every {polled.interval + SLOW_DOWN_STEP} seconds")

    async def _issue(self, tx: Transaction, code: DeviceCode, client: Client, now: float,
                     jkt: str | None) -> _Issued:
        assert code.user_id is not None
        session = await tx.uow.sessions.get(code.sid) if code.sid else None
        if session is None or not session.active:
            raise InvalidGrant("the device code is invalid", detail="session ended")
        try:
            await check_user(tx.uow, code.user_id, tenant_id=client_tenant(client))
        except NotInGoodStanding as exc:
            raise InvalidGrant("the device code is invalid", detail=exc.reason) from None
        scope = narrow_to_entitlement(code.scope, await tx.uow.roles.of_user(code.user_id))
        aud = code.audience or (self._tokens.issuer,)
        if "openid" in scope and self._tokens.issuer not in aud:
            aud = (*aud, self._tokens.issuer)
        iat = int(now)
        claims = AccessTokenClaims(
            sub=code.user_id, client_id=client.client_id, audience=aud, scope=scope,
            iat=iat, exp=iat + self._tokens.ttl, jti=new_jti(), tenant_id=session.tenant_id,
            sid=session.sid, sv=session.sv, acr=session.acr, amr=session.amr,
            auth_time=int(session.auth_time), jkt=jkt)
        refresh = None
        if client.allows_grant(GRANT_REFRESH_TOKEN):
            refresh = await self._start_family(tx, session, client, claims, scope, now,
                                               jkt if client.public else None)
        tx.audit(events.TOKEN_ISSUED, grant_type=self.grant_type, client_id=client.client_id,
                 user_id=code.user_id, sid=session.sid, tenant_id=session.tenant_id,
                 jti=claims.jti, audience=list(aud), scopes=format_scope(scope), jkt=jkt)
        return _Issued(session, claims, refresh, scope)

    async def _start_family(self, tx: Transaction, session: Session, client: Client,
                            claims: AccessTokenClaims, scope: frozenset[str], now: float,
                            jkt: str | None) -> str:
        family = RefreshFamily(
            family_id=new_id(), sid=session.sid, client_id=client.client_id,
            user_id=session.user_id, tenant_id=session.tenant_id, scope=scope,
            audience=claims.audience, created_at=now, expires_at=now + self._family_ttl,
            jkt=jkt)
        raw = new_secret()
        await tx.uow.refresh.add_family(family)
        await tx.uow.refresh.add_token(RefreshToken(
            token_hash=token_hash(raw), family_id=family.family_id, generation=0,
            issued_at=claims.iat, expires_at=min(now + self._refresh_ttl, family.expires_at),
            access_jti=claims.jti))
        return raw
