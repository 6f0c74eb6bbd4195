"""The token-exchange grant (RFC 8693 §2).

Steps: parse the request → load and check the subject token (active now: signature,
revocation, session, version) → check the target (the client may hold it) → narrow the
scope → build the ``act`` chain → issue with the remaining lifetime → audit.
"""

from __future__ import annotations

from typing import Any

from tessera.core.clients import GRANT_TOKEN_EXCHANGE, Client
from tessera.core.clock import Clock
from tessera.core.scopes import ScopeError, format_scope, narrow_scope, parse_scope
from tessera.core.secrets import token_hash
from tessera.observability import events
from tessera.observability.audit import AuditLog
from tessera.protocol.errors import InvalidGrant, InvalidRequest, InvalidScope, InvalidTarget
from tessera.protocol.http import OAuthRequest, Params
from tessera.protocol.rfc6749.token_endpoint import TokenResult
from tessera.protocol.rfc9068.access_token import AccessTokenClaims, AccessTokenIssuer, new_jti
from tessera.protocol.token_state import AccessTokenState, TokenInactive

__all__ = ["TOKEN_TYPE_ACCESS_TOKEN", "TOKEN_TYPE_JWT", "TokenExchangeGrant"]

TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
_SUBJECT_TYPES = frozenset({TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT})
_MIN_LIFETIME = 5


class TokenExchangeGrant:
    grant_type = GRANT_TOKEN_EXCHANGE

    def __init__(self, tokens: AccessTokenIssuer, token_state: AccessTokenState,
                 audit: AuditLog, clock: Clock, *, max_act_depth: int = 4) -> None:
        self._tokens = tokens
        self._state = token_state
        self._audit = audit
        self._clock = clock
        self._max_depth = max_act_depth

    async def handle(self, request: OAuthRequest, params: Params, client: Client) -> TokenResult:
        self._check_types(params)
        subject = await self._active(params.require("subject_token"), "subject_token")
        actor = None
        if "actor_token" in params:
            if params.get("actor_token_type") not in _SUBJECT_TYPES:
                raise InvalidRequest("actor_token_type must be an access token or JWT type")
            actor = await self._active(params.require("actor_token"), "actor_token")
        audience = self._target(params, client)
        scope = self._narrow(params, subject, client)
        now = int(self._clock.now())
        exp = min(now + self._tokens.ttl, int(subject["exp"]))
        if exp - now < _MIN_LIFETIME:
            raise InvalidGrant("the subject token is about to expire")
        claims = AccessTokenClaims(
            sub=str(subject["sub"]), client_id=client.client_id, audience=(audience,),
            scope=scope, iat=now, exp=exp, jti=new_jti(), tenant_id=subject.get("tid"),
            sid=subject.get("sid"), sv=subject.get("sv"), acr=subject.get("acr"),
            amr=tuple(subject.get("amr") or ()), auth_time=subject.get("auth_time"),
            act=self._act_chain(subject, actor, client),
        )
        token = self._tokens.sign(claims)
        await self._audit.record(
            events.TOKEN_EXCHANGED, client=client.client_id, subject=claims.sub,
            tenant=claims.tenant_id, sid=claims.sid,
            subject_token_hash=token_hash(params.require("subject_token")),
            token_hash=token_hash(token), jti=claims.jti, audience=[audience],
            scopes=format_scope(scope), actor=(claims.act or {}).get("sub"))
        return TokenResult(access_token=token, expires_in=exp - now, scope=scope,
                           issued_token_type=TOKEN_TYPE_ACCESS_TOKEN)

    @staticmethod
    def _check_types(params: Params) -> None:
        if params.require("subject_token_type") not in _SUBJECT_TYPES:
            raise InvalidRequest("unsupported subject_token_type")
        requested = params.get("requested_token_type")
        if requested is not None and requested not in _SUBJECT_TYPES:
            raise InvalidRequest("unsupported requested_token_type")

    async def _active(self, token: str, name: str) -> dict[str, Any]:
        try:
            return await self._state.check(token)
        except TokenInactive as exc:
            raise InvalidGrant(f"the {name} is not active", detail=exc.reason) from None

    @staticmethod
    def _target(params: Params, client: Client) -> str:
        """One audience (§2.1 ``audience``/``resource``), and only one the client holds."""
        requested = params.get("audience") or params.get("resource")
        if requested is None:
            raise InvalidTarget("name the audience to exchange the token for")
        if requested not in client.audiences:
            raise InvalidTarget("the client may not obtain tokens for this audience")
        return requested

    @staticmethod
    def _narrow(params: Params, subject: dict[str, Any], client: Client) -> frozenset[str]:
        held = parse_scope(str(subject.get("scope") or ""))
        allowed = held & client.scopes if client.scopes else held
        try:
            return narrow_scope(parse_scope(params.get("scope")), allowed)
        except ScopeError:
            raise InvalidScope("the requested scope exceeds the subject token's") from None

    def _act_chain(self, subject: dict[str, Any], actor: dict[str, Any] | None,
                   client: Client) -> dict[str, Any]:
        """The party now acting (the actor token's subject, else the client) wraps any
        chain the subject token already carries (§4.1: the outermost act is current)."""
        current: dict[str, Any] = {"sub": str(actor["sub"]) if actor else client.client_id}
        previous = subject.get("act")
        if isinstance(previous, dict):
            if _depth(previous) >= self._max_depth:
                raise InvalidGrant("the delegation chain is too long")
            current["act"] = previous
        return current


def _depth(act: dict[str, Any]) -> int:
    depth = 0
    node: Any = act
    while isinstance(node, dict):
        depth += 1
        node = node.get("act")
    return depth
