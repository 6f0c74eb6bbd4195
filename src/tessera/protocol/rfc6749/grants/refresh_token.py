"""Refresh Token Grant — RFC 6749 §6, with rotation and reuse detection (RFC 9700 §4.14.2).

Steps: load the presented token, its family and session → check the client and, for a
family bound to a DPoP key (public clients, RFC 9449 §5), that the request's proof was
signed with that key → check the user's standing and narrow privileged scopes to the
user's roles now (``standing``, ``core.roles``) → judge (core.refresh) → act:
- ROTATE: a conditional update marks it rotated; exactly one concurrent caller wins.
  The successor is ``derive_secret(key, token)``, so a loser of the race (within the
  grace window) or a client retrying after a lost response (within the longer retry
  window) gets the very same pair — as long as the successor has never been used.
- REPLAY_SUCCESSOR: answer the retry with the successor already issued.
- REUSE: revoke the family and its session, commit, then answer ``invalid_grant``.
- A session past its idle or absolute timeout (``core.session_bounds``, the tenant's
  policy over ``session_defaults``) is revoked like at a use of its cookie, committed,
  and answered ``invalid_grant``: the bounds hold for the apps of a session too.
A store failure before commit leaves the old token valid; after commit, the retry path
returns the new pair: never neither.

The common case — the family head presented by its client, everything in good standing,
nothing for the risk observer to raise — takes a hot path (``_rotate_fast``): one read
of everything the checks above need (``RefreshRotations.read``), the same checks in
Python, then one atomic write (``RefreshRotations.rotate``) that rotates only if the
token is still unrotated and its family and session still live. Anything else, and a
lost race, goes to the general path above, which judges again from scratch: refusals,
replays and reuse are decided there only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tessera.application import lifecycle
from tessera.application.ports import AuditTrail
from tessera.application.standing import NotInGoodStanding, check_user, judge_user
from tessera.application.transaction import Transaction, transaction
from tessera.core.clients import GRANT_REFRESH_TOKEN, Client
from tessera.core.clock import Clock
from tessera.core.refresh import RefreshFamily, RefreshToken, RotationVerdict, judge_presentation
from tessera.core.roles import narrow_to_entitlement
from tessera.core.scopes import format_scope
from tessera.core.secrets import derive_secret, token_hash
from tessera.core.session_bounds import SessionPolicy, ended_by_timeout
from tessera.core.sessions import Session
from tessera.observability import events
from tessera.protocol.errors import InvalidGrant
from tessera.protocol.http import OAuthRequest, Params
from tessera.protocol.rfc6749.grants._shared import grant_scope, token_type
from tessera.protocol.rfc6749.token_endpoint import TokenResult
from tessera.protocol.rfc9068.access_token import AccessTokenClaims, AccessTokenIssuer
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.protocol.rfc9068.validator import check_possession
from tessera.protocol.risk import RequestContext, RiskObserver, context_of
from tessera.store.ports import RefreshRotation, RefreshSnapshot, Store

__all__ = ["RefreshTokenGrant", "successor_jti", "successor_token"]

_REFRESH_LABEL = "tessera/refresh-successor/v1"
_JTI_LABEL = "tessera/refresh-access-jti/v1"


def successor_token(key: bytes, token: str) -> str:
    return derive_secret(key, _REFRESH_LABEL, token)


def successor_jti(key: bytes, token: str) -> str:
    return derive_secret(key, _JTI_LABEL, token)[:22]


@dataclass(frozen=True, slots=True)
class _Issued:
    family: RefreshFamily
    session: Session
    successor: RefreshToken
    refresh_token: str
    scope: frozenset[str]


class RefreshTokenGrant:
    grant_type = GRANT_REFRESH_TOKEN

    def __init__(self, store: Store, tokens: AccessTokenIssuer, audit: AuditTrail, clock: Clock,
                 *, derivation_key: bytes, refresh_ttl: int, grace_seconds: float,
                 retry_seconds: float = 0.0,
                 session_defaults: SessionPolicy | None = None,
                 risk: RiskObserver | None = None) -> None:
        self._risk = risk
        """Risk signals (``protocol.risk``): observes every refresh and reuse, and may ask
        a family to re-authenticate."""
        self._store = store
        self._tokens = tokens
        self._audit = audit
        self._clock = clock
        self._key = derivation_key
        self._refresh_ttl = refresh_ttl
        self._grace = grace_seconds
        self._retry = retry_seconds
        self._session_defaults = session_defaults

    async def handle(self, request: OAuthRequest, params: Params, client: Client, *,
                     jkt: str | None = None) -> TokenResult:
        presented = params.require("refresh_token")
        reuse = False
        ctx = context_of(request)
        fast = await self._rotate_fast(presented, params, client, jkt, ctx)
        if fast is not None:
            return await self._respond(fast, jkt, client, request)
        try:
            async with transaction(self._store, self._audit) as tx:
                issued = await self._rotate_or_replay(tx, presented, params, client, jkt, ctx)
                if issued is None:
                    reuse = True
        except InvalidGrant:
            if self._risk is not None:
                await self._risk.refused(token_hash(presented), ctx)
            raise
        if reuse or issued is None:
            raise InvalidGrant("refresh token is invalid")
        return await self._respond(issued, jkt, client, request)

    async def _rotate_or_replay(self, tx: Transaction, presented: str, params: Params,
                                client: Client, jkt: str | None,
                                ctx: RequestContext) -> _Issued | None:
        """Returns the pair to answer with; None after revoking a family on reuse (the
        transaction must commit that); raises InvalidGrant for every other refusal."""
        now = self._clock.now()
        digest = token_hash(presented)
        token, family, session = await self._load(tx, digest)
        if family.client_id != client.client_id:
            raise InvalidGrant("refresh token is invalid", detail="issued to another client")
        self._check_binding(family, jkt)
        family = await self._check_standing(tx, family)
        if session.active and await self._timed_out(tx, session, now):
            return None  # the session ended in this transaction: commit, then refuse
        if self._risk is not None and await self._risk.step_up_required(tx.uow,
                                                                        family.family_id):
            raise InvalidGrant("sign in again: this session needs re-authentication",
                               detail="risk step-up")
        successor_raw = successor_token(self._key, presented)
        successor_hash = token_hash(successor_raw)
        head = await self._successor_is_head(tx, token)
        verdict = judge_presentation(token, family, session_active=session.active,
                                     successor_is_head=head, now=now,
                                     grace_seconds=self._grace, retry_seconds=self._retry)
        if verdict is RotationVerdict.ROTATE:
            if await tx.uow.refresh.rotate(digest, successor_hash=successor_hash, at=now):
                issued = await self._issue_successor(tx, token, family, session,
                                                     successor_raw, params, now, jkt)
                if self._risk is not None:
                    await self._risk.refreshed(tx, family, ctx)
                return issued
            # Lost a race: the winner has committed; judge again against its state.
            token, family, session = await self._load(tx, digest)
            family = await self._check_standing(tx, family)
            verdict = judge_presentation(token, family, session_active=session.active,
                                         successor_is_head=await self._successor_is_head(
                                             tx, token),
                                         now=now, grace_seconds=self._grace,
                                         retry_seconds=self._retry)
        if verdict is RotationVerdict.REPLAY_SUCCESSOR:
            successor = await tx.uow.refresh.get_token(successor_hash)
            if successor is None:
                raise InvalidGrant("refresh token is invalid", detail="successor missing")
            scope = grant_scope(params, family.scope)
            tx.audit(events.TOKEN_REFRESHED, client_id=client.client_id, user_id=family.user_id,
                     sid=family.sid, family_id=family.family_id, token_hash=digest,
                     jti=successor.access_jti, replay=True)
            return _Issued(family, session, successor, successor_raw, scope)
        if verdict is RotationVerdict.REUSE:
            await lifecycle.revoke_family(tx, family.family_id, at=now, reason="refresh_reuse",
                                           token_ttl=self._tokens.ttl)
            await lifecycle.revoke_session(tx, family.sid, at=now, reason="refresh_reuse",
                                           token_ttl=self._tokens.ttl)
            tx.audit(events.REFRESH_REUSE_DETECTED, client_id=client.client_id,
                     user_id=family.user_id, sid=family.sid, family_id=family.family_id,
                     token_hash=digest, tenant_id=family.tenant_id)
            if self._risk is not None:
                await self._risk.reused(tx, family, ctx)
            return None
        raise InvalidGrant("refresh token is invalid", detail=verdict.value)

    async def _rotate_fast(self, presented: str, params: Params, client: Client,
                           jkt: str | None, ctx: RequestContext) -> _Issued | None:
        """The pair, rotated in one read and one write; None: take the general path."""
        now = self._clock.now()
        digest = token_hash(presented)
        risk_read = self._risk.refresh_read(now) if self._risk is not None else None
        async with self._store.refresh_rotations() as rotations:
            snapshot = await rotations.read(digest, risk_read)
            if snapshot is None:
                return None
            planned = self._plan_rotation(snapshot, presented, params, client, jkt, ctx, now)
            if planned is None:
                return None
            rotation, issued = planned
            if not await rotations.rotate(rotation):
                return None  # lost a race, or revoked meanwhile: judge again
        self._audit.emit([rotation.audit])
        return issued

    def _plan_rotation(self, snapshot: RefreshSnapshot, presented: str, params: Params,
                       client: Client, jkt: str | None, ctx: RequestContext, now: float
                       ) -> tuple[RefreshRotation, _Issued] | None:
        """What the general path would do on this snapshot, if that is a plain ROTATE;
        None for everything else (it decides those)."""
        token, family, session = snapshot.token, snapshot.family, snapshot.session
        if family.client_id != client.client_id or not session.active:
            return None
        if family.jkt is not None and (jkt is None
                                       or not hmac.compare_digest(jkt, family.jkt)):
            return None
        try:
            judge_user(snapshot.user, snapshot.tenant, tenant_id=family.tenant_id)
        except NotInGoodStanding:
            return None
        if self._session_defaults is not None:
            policy = (snapshot.session_policy or SessionPolicy(session.tenant_id)).over(
                self._session_defaults)
            if ended_by_timeout(session, policy, now) is not None:
                return None
        observation = None
        if self._risk is not None:
            observation = self._risk.quiet_refresh(family, ctx, now, snapshot)
            if observation is None:
                return None
        verdict = judge_presentation(token, family, session_active=True,
                                     successor_is_head=False, now=now,
                                     grace_seconds=self._grace, retry_seconds=self._retry)
        if verdict is not RotationVerdict.ROTATE:
            return None
        family = replace(family, scope=narrow_to_entitlement(family.scope, snapshot.roles))
        scope = grant_scope(params, family.scope)
        successor_raw = successor_token(self._key, presented)
        successor = self._successor(token, family, successor_raw, now)
        record = self._audit.make(**self._refreshed_fields(token, family, successor, scope,
                                                           jkt))
        rotation = RefreshRotation(token_hash=token.token_hash, successor=successor,
                                   sid=session.sid, at=now, audit=record,
                                   observation=observation)
        return rotation, _Issued(family, session, successor, successor_raw, scope)

    def _successor(self, token: RefreshToken, family: RefreshFamily, successor_raw: str,
                   now: float) -> RefreshToken:
        return RefreshToken(
            token_hash=token_hash(successor_raw), family_id=family.family_id,
            generation=token.generation + 1, issued_at=int(now),
            expires_at=min(now + self._refresh_ttl, family.expires_at),
            access_jti=successor_jti(self._key, successor_raw),
        )

    @staticmethod
    def _refreshed_fields(token: RefreshToken, family: RefreshFamily,
                          successor: RefreshToken, scope: frozenset[str],
                          jkt: str | None) -> dict[str, Any]:
        """The ``token.refreshed`` audit event of a rotation (both paths)."""
        return {"event": events.TOKEN_REFRESHED, "client_id": family.client_id,
                "user_id": family.user_id, "sid": family.sid, "tenant_id": family.tenant_id,
                "family_id": family.family_id, "token_hash": token.token_hash,
                "new_token_hash": successor.token_hash, "jti": successor.access_jti,
                "generation": successor.generation, "scopes": format_scope(scope),
                "jkt": jkt}

    async def _timed_out(self, tx: Transaction, session: Session, now: float) -> bool:
        """End the session (in ``tx``) if its idle or absolute timeout has passed."""
        if self._session_defaults is None:
            return False
        own = await tx.uow.session_policies.get(session.tenant_id)
        policy = (own or SessionPolicy(session.tenant_id)).over(self._session_defaults)
        reason = ended_by_timeout(session, policy, now)
        if reason is None:
            return False
        await lifecycle.revoke_session(tx, session.sid, at=now, reason=reason,
                                       token_ttl=self._tokens.ttl, actor="system")
        return True

    @staticmethod
    def _check_binding(family: RefreshFamily, jkt: str | None) -> None:
        """RFC 9449 §5: a family bound to a key is refreshed only with a proof of that key.
        Refused before judging, so a thief without the key can neither use nor burn it.
        The rule is the validator's (``check_possession``), as for access tokens."""
        try:
            check_possession(family.jkt, jkt)
        except TokenRejected:
            if jkt is None:
                raise InvalidGrant("the refresh token is bound to a DPoP key: send a DPoP "
                                   "proof", detail="bound family, no proof") from None
            raise InvalidGrant("the DPoP proof's key is not the refresh token's",
                               detail="bound family, another key") from None

    @staticmethod
    async def _check_standing(tx: Transaction, family: RefreshFamily) -> RefreshFamily:
        """The user must be in good standing (``standing``; refused before judging, so a
        disabled user's token is not burnt), and the family's privileged scopes are
        narrowed to what the user's roles entitle now (a role removed is gone now)."""
        try:
            await check_user(tx.uow, family.user_id, tenant_id=family.tenant_id)
        except NotInGoodStanding as exc:
            raise InvalidGrant("refresh token is invalid", detail=exc.reason) from None
        return replace(family, scope=narrow_to_entitlement(
            family.scope, await tx.uow.roles.of_user(family.user_id)))

    async def _load(self, tx: Transaction, digest: str
                    ) -> tuple[RefreshToken, RefreshFamily, Session]:
        chain = await tx.uow.refresh.get_chain(digest)  # one round trip
        if chain is None:
            raise InvalidGrant("refresh token is invalid", detail="unknown refresh token")
        return chain

    @staticmethod
    async def _successor_is_head(tx: Transaction, token: RefreshToken) -> bool:
        if token.successor_hash is None:
            return False
        successor = await tx.uow.refresh.get_token(token.successor_hash)
        return successor is not None and successor.rotated_at is None

    async def _issue_successor(self, tx: Transaction, token: RefreshToken,
                               family: RefreshFamily, session: Session, successor_raw: str,
                               params: Params, now: float, jkt: str | None) -> _Issued:
        scope = grant_scope(params, family.scope)
        successor = self._successor(token, family, successor_raw, now)
        await tx.uow.refresh.add_token(successor)
        await tx.uow.sessions.touch(session.sid, now)
        tx.audit(**self._refreshed_fields(token, family, successor, scope, jkt))
        return _Issued(family, session, successor, successor_raw, scope)

    async def _respond(self, issued: _Issued, jkt: str | None, client: Client,
                       request: OAuthRequest) -> TokenResult:
        family, session, successor = issued.family, issued.session, issued.successor
        iat = int(successor.issued_at)
        claims = AccessTokenClaims(
            sub=family.user_id, client_id=family.client_id, audience=family.audience,
            scope=issued.scope, iat=iat, exp=iat + self._tokens.ttl, jti=successor.access_jti,
            tenant_id=family.tenant_id, sid=session.sid, sv=session.sv, acr=session.acr,
            amr=session.amr, auth_time=int(session.auth_time), jkt=jkt,
        )
        expires_in = max(0, claims.exp - int(self._clock.now()))
        return TokenResult(access_token=await self._tokens.issue(claims, client, request),
                           expires_in=expires_in,
                           scope=issued.scope, refresh_token=issued.refresh_token,
                           token_type=token_type(jkt))
