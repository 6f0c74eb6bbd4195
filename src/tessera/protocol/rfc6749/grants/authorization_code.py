"""Authorization Code Grant — RFC 6749 §4.1.3, with PKCE (RFC 7636) and OIDC ID tokens.

A code is single-use: a second presentation revokes the refresh family issued from it
(§4.1.2) and is answered ``invalid_grant``. A user no longer in good standing (disabled,
deleted, suspended tenant: ``standing``) gets ``invalid_grant``; privileged scopes are
narrowed to the user's roles at redemption.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tessera.application import lifecycle
from tessera.application.ports import AuditTrail
from tessera.application.standing import NotInGoodStanding, check_user, client_tenant
from tessera.application.transaction import Transaction, transaction
from tessera.core.clients import GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN, Client
from tessera.core.clock import Clock
from tessera.core.federation import profile_claims
from tessera.core.refresh import RefreshFamily, RefreshToken
from tessera.core.roles import narrow_to_entitlement
from tessera.core.scopes import format_scope
from tessera.core.secrets import new_id, new_secret, token_hash
from tessera.core.sessions import AuthorizationCode, Session
from tessera.observability import events
from tessera.protocol.errors import InvalidGrant
from tessera.protocol.http import OAuthRequest, Params
from tessera.protocol.oidc.id_token import IdTokenIssuer
from tessera.protocol.rfc6749.grants._shared import select_audience, token_type
from tessera.protocol.rfc6749.token_endpoint import TokenResult
from tessera.protocol.rfc7636 import PkceError, verify_code_verifier
from tessera.protocol.rfc9068.access_token import AccessTokenClaims, AccessTokenIssuer, new_jti
from tessera.store.ports import Store

__all__ = ["AuthorizationCodeGrant"]


@dataclass(frozen=True, slots=True)
class _Redeemed:
    code: AuthorizationCode
    session: Session
    claims: AccessTokenClaims
    refresh_token: str | None


class AuthorizationCodeGrant:
    grant_type = GRANT_AUTHORIZATION_CODE

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
        code_value = params.require("code")
        redirect_uri = params.require("redirect_uri")
        replayed = False
        async with transaction(self._store, self._audit) as tx:
            redeemed = await self._redeem(tx, code_value, redirect_uri, params, client, jkt)
            replayed = redeemed is None
        if replayed or redeemed is None:
            raise InvalidGrant("authorization code is invalid")
        access_token = await self._tokens.issue(redeemed.claims, client, request)
        id_token = None
        if "openid" in redeemed.code.scope:
            async with self._store.unit_of_work(read_only=True) as uow:
                profile = await uow.federation.profile_of(redeemed.session.user_id)
            id_token = self._id_tokens.sign(
                sub=redeemed.session.user_id, client_id=client.client_id,
                now=redeemed.claims.iat, auth_time=redeemed.session.auth_time,
                sid=redeemed.session.sid, acr=redeemed.session.acr, amr=redeemed.session.amr,
                nonce=redeemed.code.nonce, access_token=access_token,
                extra=profile_claims(profile, set(redeemed.code.scope)))
        return TokenResult(access_token=access_token, expires_in=self._tokens.ttl,
                           scope=redeemed.claims.scope, refresh_token=redeemed.refresh_token,
                           id_token=id_token, token_type=token_type(jkt))

    async def _redeem(self, tx: Transaction, code_value: str, redirect_uri: str,
                      params: Params, client: Client, jkt: str | None) -> _Redeemed | None:
        now = self._clock.now()
        consumed = await tx.uow.codes.consume(token_hash(code_value), at=now)
        if consumed is None:
            raise InvalidGrant("authorization code is invalid", detail="unknown code")
        code, first_use = consumed
        if code.client_id != client.client_id:
            raise InvalidGrant("authorization code is invalid", detail="another client's code")
        if not first_use:
            if code.family_id is not None:
                await lifecycle.revoke_family(tx, code.family_id, at=now, reason="code_reuse",
                                               token_ttl=self._tokens.ttl)
            tx.audit(events.CODE_REUSE_DETECTED, client_id=client.client_id, sid=code.sid,
                     user_id=code.user_id, family_id=code.family_id)
            return None
        self._check_code(code, redirect_uri, params, now)
        session = await tx.uow.sessions.get(code.sid)
        if session is None or not session.active:
            raise InvalidGrant("authorization code is invalid", detail="session ended")
        try:
            await check_user(tx.uow, code.user_id, tenant_id=client_tenant(client))
        except NotInGoodStanding as exc:
            raise InvalidGrant("authorization code is invalid", detail=exc.reason) from None
        # privileged scopes as the user's roles entitle them now, not when the code was made
        code = replace(code, scope=narrow_to_entitlement(
            code.scope, await tx.uow.roles.of_user(code.user_id)))
        iat = int(now)
        aud = select_audience(params, client, self._tokens.issuer)
        if "openid" in code.scope and self._tokens.issuer not in aud:
            aud = (*aud, self._tokens.issuer)  # userinfo is a resource at the issuer
        claims = AccessTokenClaims(
            sub=code.user_id, client_id=client.client_id, audience=aud, scope=code.scope,
            iat=iat, exp=iat + self._tokens.ttl, jti=new_jti(), tenant_id=session.tenant_id,
            sid=session.sid, sv=session.sv, acr=session.acr, amr=session.amr,
            auth_time=int(session.auth_time), jkt=jkt,
        )
        # who took part in the session: back-channel logout reaches it (identity/signals)
        await tx.uow.signals.join_session(session.sid, client.client_id, at=now)
        refresh = None
        if client.allows_grant(GRANT_REFRESH_TOKEN):
            # RFC 9449 §5: only a public client's refresh token is bound to the key; a
            # confidential client's is already bound to its authentication.
            family_jkt = jkt if client.public else None
            refresh = await self._start_family(tx, code, session, claims, now, family_jkt)
        tx.audit(events.TOKEN_ISSUED, grant_type=self.grant_type, client_id=client.client_id,
                 user_id=code.user_id, sid=session.sid, tenant_id=session.tenant_id,
                 jti=claims.jti, audience=list(aud), scopes=format_scope(code.scope),
                 jkt=jkt)
        return _Redeemed(code, session, claims, refresh)

    def _check_code(self, code: AuthorizationCode, redirect_uri: str, params: Params,
                    now: float) -> None:
        if now >= code.expires_at:
            raise InvalidGrant("authorization code is invalid", detail="expired code")
        if redirect_uri != code.redirect_uri:
            raise InvalidGrant("redirect_uri does not match the authorization request")
        try:
            verify_code_verifier(params.get("code_verifier"), code.code_challenge)
        except PkceError as exc:
            raise InvalidGrant("PKCE verification failed", detail=str(exc)) from None

    async def _start_family(self, tx: Transaction, code: AuthorizationCode, session: Session,
                            claims: AccessTokenClaims, now: float, jkt: str | None) -> str:
        family = RefreshFamily(
            family_id=new_id(), sid=session.sid, client_id=code.client_id,
            user_id=code.user_id, tenant_id=session.tenant_id, scope=code.scope,
            audience=claims.audience, created_at=now, expires_at=now + self._family_ttl,
            jkt=jkt,
        )
        raw = new_secret()
        await tx.uow.refresh.add_family(family)
        await tx.uow.refresh.add_token(RefreshToken(
            token_hash=token_hash(raw), family_id=family.family_id, generation=0,
            issued_at=claims.iat, expires_at=min(now + self._refresh_ttl, family.expires_at),
            access_jti=claims.jti))
        await tx.uow.codes.attach_family(code.code_hash, family.family_id)
        return raw
