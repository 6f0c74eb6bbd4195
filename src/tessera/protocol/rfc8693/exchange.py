"""The token-exchange grant (RFC 8693 §2).

Steps: load the subject (and actor) token, active now → check the target against the
client's exchange policy → narrow the scope → honour ``may_act`` → build the ``act``
chain → issue with the remaining lifetime → audit.

DPoP (RFC 9449): the issued token is bound to the key of the DPoP proof sent with the
exchange request, if any (``token_type: DPoP``), and is a bearer token otherwise. A
DPoP-bound subject or actor token is exchanged only with a proof of its own key (§7:
possession of a bound token is not enough), so a token issued from a bound one is bound
to the same key (``subjects.check_binding``).

Trust boundaries (``subjects``): subject and actor tokens of another tenant are refused;
a subject token must be addressed to the requesting client (its ``aud``, issued to it,
or a configured ``subject_audiences`` trust), an actor token issued to it or naming it in
its ``aud``; a user subject's privileged scopes are re-checked against the user's roles.
The exchanged token expires no later than the subject and actor tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tessera.application.ports import AuditTrail
from tessera.core.clients import GRANT_TOKEN_EXCHANGE, Client
from tessera.core.clock import Clock
from tessera.core.roles import narrow_to_entitlement
from tessera.core.scopes import ScopeError, format_scope, parse_scope
from tessera.core.secrets import token_hash
from tessera.observability import events
from tessera.protocol.errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget
from tessera.protocol.http import OAuthRequest, Params
from tessera.protocol.rfc6749.grants._shared import token_type
from tessera.protocol.rfc6749.token_endpoint import TokenResult
from tessera.protocol.rfc8693.impersonation import TOKEN_TYPE_USER_ID, Impersonation
from tessera.protocol.rfc8693.policy import ExchangePolicy
from tessera.protocol.rfc8693.subjects import (
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_JWT,
    SubjectLoader,
)
from tessera.protocol.rfc9068.access_token import AccessTokenClaims, AccessTokenIssuer, new_jti

__all__ = ["TOKEN_TYPE_ACCESS_TOKEN", "TOKEN_TYPE_JWT", "TokenExchangeGrant"]

_MIN_LIFETIME = 5
_ISSUABLE = frozenset({TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT})


class TokenExchangeGrant:
    grant_type = GRANT_TOKEN_EXCHANGE

    def __init__(self, tokens: AccessTokenIssuer, subjects: SubjectLoader, audit: AuditTrail,
                 clock: Clock, *, policies: Mapping[str, ExchangePolicy] | None = None,
                 default_policy: ExchangePolicy | None = None,
                 impersonation: Impersonation | None = None) -> None:
        self._tokens = tokens
        self._subjects = subjects
        self._audit = audit
        self._clock = clock
        self._policies = dict(policies or {})
        self._default = default_policy or ExchangePolicy()
        self._impersonation = impersonation

    async def handle(self, request: OAuthRequest, params: Params, client: Client, *,
                     jkt: str | None = None) -> TokenResult:
        policy = self._policies.get(client.client_id, self._default)
        requested_type = params.get("requested_token_type")
        if requested_type is not None and requested_type not in _ISSUABLE:
            raise InvalidRequest("unsupported requested_token_type")
        subject_token = params.require("subject_token")
        if params.require("subject_token_type") == TOKEN_TYPE_USER_ID:
            return await self._impersonate(params, subject_token, client, policy, jkt,
                                           request)
        subject = await self._subjects.load(subject_token, params.require("subject_token_type"),
                                            client, "subject_token", jkt=jkt)
        actor = None
        if "actor_token" in params:
            actor = await self._subjects.load(params.require("actor_token"),
                                              params.get("actor_token_type"), client,
                                              "actor_token", jkt=jkt)
        elif "actor_token_type" in params:
            raise InvalidRequest("actor_token_type without actor_token")
        requested_audience = self._requested_target(params)
        if requested_audience is not None:
            policy.check_target(requested_audience, client)
            audiences: tuple[str, ...] = (requested_audience,)
        else:
            audiences = _own_audience(subject)
        roles = (await self._subjects.roles_of(str(subject["sub"]))
                 if subject.get("sid") is not None else None)
        scope = self._scope(params, subject, audiences[0] if len(audiences) == 1 else "",
                            client, policy, roles)
        acting = str(actor["sub"]) if actor else client.client_id
        self._check_may_act(subject, acting)
        now = int(self._clock.now())
        lifetime = min(self._tokens.ttl, policy.max_lifetime or self._tokens.ttl)
        exp = min(now + lifetime, int(subject["exp"]),
                  int(actor["exp"]) if actor else now + lifetime)
        if exp - now < _MIN_LIFETIME:
            raise InvalidGrant("the subject token is about to expire")
        claims = AccessTokenClaims(
            sub=str(subject["sub"]), client_id=client.client_id, audience=audiences,
            scope=scope, iat=now, exp=exp, jti=new_jti(), tenant_id=subject.get("tid"),
            sid=subject.get("sid"), sv=subject.get("sv"), acr=subject.get("acr"),
            amr=tuple(subject.get("amr") or ()), auth_time=subject.get("auth_time"),
            act=self._act_chain(subject, acting, policy), jkt=jkt,
        )
        token = await self._tokens.issue(claims, client, request)
        await self._audit.record(
            events.TOKEN_EXCHANGED, client_id=client.client_id, user_id=claims.sub,
            tenant_id=claims.tenant_id, sid=claims.sid,
            subject_token_type=params.get("subject_token_type"),
            subject_token_hash=token_hash(subject_token), token_hash=token_hash(token),
            jti=claims.jti, audience=list(audiences), scopes=format_scope(scope),
            actor=acting, act_depth=_depth(claims.act), jkt=jkt)
        return TokenResult(access_token=token, expires_in=exp - now, scope=scope,
                           issued_token_type=TOKEN_TYPE_ACCESS_TOKEN,
                           token_type=token_type(jkt))

    async def _impersonate(self, params: Params, user_id: str, client: Client,
                           policy: ExchangePolicy, jkt: str | None,
                           request: OAuthRequest | None = None) -> TokenResult:
        """Admin impersonation (``impersonation``): a new session of the user tied to the
        admin's, ``act`` naming the admin, scopes capped by the admin's token and both
        users' role entitlements, never outliving the admin's token."""
        impersonation = self._impersonation
        if impersonation is None or not impersonation.policy.enabled:
            raise InvalidRequest("unsupported subject_token_type")
        if params.get("actor_token_type") != TOKEN_TYPE_ACCESS_TOKEN:
            raise InvalidRequest("impersonation needs an actor_token of type access_token")
        actor_token = params.require("actor_token")
        actor = await self._subjects.load(actor_token, TOKEN_TYPE_ACCESS_TOKEN, client,
                                          "actor_token", jkt=jkt)
        impersonation.check_actor(actor)
        audience = self._target(params)
        policy.check_target(audience, client)
        try:
            requested = parse_scope(params.get("scope"))
            held = parse_scope(str(actor.get("scope") or ""))
        except ScopeError as exc:
            raise InvalidScope(str(exc)) from None
        admin_roles, user_roles = await impersonation.entitlements(user_id, actor)
        cap = narrow_to_entitlement(narrow_to_entitlement(held, admin_roles), user_roles)
        # never impersonation itself: an impersonation cannot beget another
        scope = policy.grant_scope(requested, cap - {impersonation.policy.scope},
                                   audience, client)
        admin = str(actor["sub"])
        act: dict[str, Any] = {"sub": admin}
        if isinstance(actor.get("act"), dict):
            if _depth(actor["act"]) >= policy.max_act_depth:
                raise InvalidGrant("the delegation chain is too long")
            act["act"] = actor["act"]
        now = int(self._clock.now())
        lifetime = min(self._tokens.ttl, policy.max_lifetime or self._tokens.ttl,
                       impersonation.policy.max_lifetime)
        exp = min(now + lifetime, int(actor["exp"]))  # never outlives the admin's token
        if exp - now < _MIN_LIFETIME:
            raise InvalidGrant("the actor_token is about to expire")
        session = await impersonation.open_session(user_id, actor, client_id=client.client_id)
        claims = AccessTokenClaims(
            sub=session.user_id, client_id=client.client_id, audience=(audience,),
            scope=scope, iat=now, exp=exp, jti=new_jti(),
            tenant_id=session.tenant_id, sid=session.sid, sv=session.sv, acr=session.acr,
            amr=session.amr, auth_time=int(session.auth_time), act=act, jkt=jkt)
        token = await self._tokens.issue(claims, client, request)
        await self._audit.record(
            events.TOKEN_EXCHANGED, client_id=client.client_id, user_id=claims.sub,
            tenant_id=claims.tenant_id, sid=claims.sid, subject_token_type=TOKEN_TYPE_USER_ID,
            actor_token_hash=token_hash(actor_token), token_hash=token_hash(token),
            jti=claims.jti, audience=[audience], scopes=format_scope(scope), actor=admin,
            actor_sid_hash=token_hash(str(actor["sid"])), act_depth=_depth(act),
            impersonation=True, jkt=jkt)
        return TokenResult(access_token=token, expires_in=exp - now, scope=scope,
                           issued_token_type=TOKEN_TYPE_ACCESS_TOKEN,
                           token_type=token_type(jkt))

    @staticmethod
    def _target(params: Params) -> str:
        """One audience (§2.1 ``audience`` or ``resource``), required (impersonation)."""
        requested = params.get("audience") or params.get("resource")
        if requested is None:
            raise InvalidTarget("name the audience to exchange the token for")
        return requested

    @staticmethod
    def _requested_target(params: Params) -> str | None:
        """The audience asked for (§2.1 ``audience`` or ``resource``), or None: then the
        server picks the target, and it picks the subject token's own audience."""
        return params.get("audience") or params.get("resource")

    @staticmethod
    def _scope(params: Params, subject: dict[str, Any], audience: str, client: Client,
               policy: ExchangePolicy, roles: frozenset[str] | None) -> frozenset[str]:
        """requested ⊆ held by the subject ∩ the client's ∩ the policy's; a user subject's
        privileged scopes only as far as the user's roles entitle them now."""
        try:
            requested = parse_scope(params.get("scope"))
            held = parse_scope(str(subject.get("scope") or ""))
        except ScopeError as exc:
            raise InvalidScope(str(exc)) from None
        if roles is not None:
            held = narrow_to_entitlement(held, roles)
        return policy.grant_scope(requested, held, audience, client)

    @staticmethod
    def _check_may_act(subject: dict[str, Any], acting: str) -> None:
        """§4.4: a subject token that names who may act for it is obeyed."""
        may_act = subject.get("may_act")
        if isinstance(may_act, dict) and may_act.get("sub") != acting:
            raise InvalidGrant("the subject token does not allow this actor (may_act)")

    @staticmethod
    def _act_chain(subject: dict[str, Any], acting: str,
                   policy: ExchangePolicy) -> dict[str, Any]:
        """The party now acting wraps any chain the subject token already carries
        (§4.1: the outermost ``act`` is the current actor)."""
        current: dict[str, Any] = {"sub": acting}
        previous = subject.get("act")
        if isinstance(previous, dict):
            if _depth(previous) >= policy.max_act_depth:
                raise InvalidGrant("the delegation chain is too long")
            current["act"] = previous
        return current


def _own_audience(subject: dict[str, Any]) -> tuple[str, ...]:
    """RFC 8693 §2.1: without ``audience`` or ``resource`` the token is issued for the
    subject token's own audience. The subject token was already addressed to the
    requesting client (``subjects``), so this widens nothing: scope and lifetime may
    only narrow, the audience stays what the caller already held."""
    aud = subject.get("aud")
    if isinstance(aud, str) and aud:
        return (aud,)
    if isinstance(aud, list) and aud and all(isinstance(a, str) and a for a in aud):
        return tuple(aud)
    raise InvalidTarget("the subject token names no audience; name one to exchange for")


def _depth(act: Any) -> int:
    depth = 0
    while isinstance(act, dict):
        depth += 1
        act = act.get("act")
    return depth
