"""Introspection endpoint (RFC 7662 §2).

Callers authenticate as confidential clients (§2.1). A token of another tenant than the
caller's is inactive to it: tenants see nothing of each other. An inactive, unknown, expired,
revoked or stale token yields only ``{"active": false}`` (§2.2), never a reason. Refresh
tokens are introspectable by the client they were issued to. A DPoP-bound token (RFC 9449
§6.2) is answered with ``token_type: DPoP`` and its ``cnf``, so a resource server can
check the proof's key; a bound refresh token with its family's ``cnf``.

A JWT access token is checked against the in-memory revocation state when it is provably
current (``AccessTokenState`` with ``fast``): a signature check plus O(1) lookups.

RFC 9701 (JWT Response for OAuth Token Introspection): a caller that sends
``Accept: application/token-introspection+jwt`` gets the answer as a JWT signed by the
issuer's active key, ``typ: token-introspection+jwt``, with ``iss``, ``aud`` (the caller),
``iat`` and the answer in ``token_introspection`` (§5), so it can be relayed and checked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tessera.application.standing import NotInGoodStanding, check_user, client_tenant
from tessera.core.clients import Client
from tessera.core.clock import Clock
from tessera.core.scopes import format_scope
from tessera.protocol.clients import ClientAuthenticator
from tessera.protocol.errors import OAuthError, TemporarilyUnavailable
from tessera.protocol.http import (
    OAuthRequest,
    OAuthResponse,
    error_response,
    json_response,
    parse_params,
)
from tessera.protocol.token_state import AccessTokenState, TokenInactive, live_refresh
from tessera.store.ports import Store, StoreError

__all__ = ["JWT_RESPONSE_TYPE", "IntrospectionEndpoint", "wants_jwt"]

_log = logging.getLogger("tessera.protocol")
_INACTIVE = {"active": False}
_CLAIMS = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "sid",
           "sv", "tid", "acr", "amr", "auth_time", "cnf", "act")


JWT_RESPONSE_TYPE = "application/token-introspection+jwt"
_JWT_RESPONSE_TYP = "token-introspection+jwt"
JwtSigner = Callable[[dict[str, Any]], str]
"""Signs claims with the issuer's active key and ``typ: token-introspection+jwt``."""


def wants_jwt(accept: str) -> bool:
    """RFC 9701 §4: the caller asks for a JWT response in ``Accept``."""
    return any(part.split(";")[0].strip().lower() == JWT_RESPONSE_TYPE
               for part in accept.split(","))


class IntrospectionEndpoint:
    def __init__(self, authenticator: ClientAuthenticator, access_tokens: AccessTokenState,
                 store: Store, clock: Clock, *, max_body: int,
                 jwt_signer: JwtSigner | None = None, issuer: str | None = None) -> None:
        """``jwt_signer`` and ``issuer`` enable RFC 9701 JWT responses."""
        self._jwt_signer = jwt_signer
        self._issuer = issuer
        self._authenticator = authenticator
        self._access_tokens = access_tokens
        self._store = store
        self._clock = clock
        self._max_body = max_body

    async def handle(self, request: OAuthRequest) -> OAuthResponse:
        try:
            params = parse_params(request, max_body=self._max_body)
            client = await self._authenticator.authenticate(request, params,
                                                            allow_public=False)
            token = params.require("token")
            answer = await self._introspect(token, client, params.get("token_type_hint"))
            if self._jwt_signer is not None and wants_jwt(request.headers.get("accept", "")):
                return self._jwt_response(answer, client)
            return json_response(answer)
        except OAuthError as exc:
            return error_response(exc)
        except StoreError as exc:
            _log.warning("introspection failed on the store: %s", exc)
            return error_response(TemporarilyUnavailable("try again shortly"))

    def _jwt_response(self, answer: dict[str, Any], client: Client) -> OAuthResponse:
        """RFC 9701 §5: the answer as a signed JWT addressed to the caller."""
        assert self._jwt_signer is not None
        claims = {"iss": self._issuer, "aud": client.client_id,
                  "iat": int(self._clock.now()), "token_introspection": answer}
        signed = self._jwt_signer(claims)
        return OAuthResponse(status=200, body=signed.encode("ascii"), headers={
            "content-type": JWT_RESPONSE_TYPE, "cache-control": "no-store",
            "pragma": "no-cache"})

    async def _introspect(self, token: str, client: Client, hint: str | None
                          ) -> dict[str, Any]:
        """Look the token up as the hinted type first, then as the other (§2.1: the hint
        only orders the search; a wrong hint must not hide an active token)."""
        refresh_first = hint == "refresh_token" or (hint is None and token.count(".") != 2)
        lookups = [self._introspect_refresh, self._introspect_access]
        if not refresh_first:
            lookups.reverse()
        for lookup in lookups:
            body = await lookup(token, client)
            if body["active"]:
                return body
        return _INACTIVE

    async def _introspect_access(self, token: str, client: Client) -> dict[str, Any]:
        try:
            verified = await self._access_tokens.check(token, any_binding=True, fast=True)
        except TokenInactive:
            return _INACTIVE
        if verified.tenant_id != client_tenant(client):
            return _INACTIVE  # a token of another tenant is nothing here
        bound = verified.cnf_jkt is not None  # DPoP; x5t#S256 stays Bearer
        body: dict[str, Any] = {"active": True, "token_type": "DPoP" if bound else "Bearer"}
        claims = verified.claims  # the response repeats the claims (RFC 7662 §2.2)
        body.update({k: claims[k] for k in _CLAIMS if k in claims})
        return body

    async def _introspect_refresh(self, token: str, client: Client) -> dict[str, Any]:
        now = self._clock.now()
        async with self._store.unit_of_work(read_only=True) as uow:
            live = await live_refresh(uow, token, now)
            if (live is None or live.family.client_id != client.client_id
                    or live.family.tenant_id != client_tenant(client)):
                return _INACTIVE
            row, family = live.token, live.family
            try:
                await check_user(uow, family.user_id, tenant_id=family.tenant_id)
            except NotInGoodStanding:
                return _INACTIVE
        body = {
            "active": True, "token_type": "refresh_token", "client_id": family.client_id,
            "sub": family.user_id, "scope": format_scope(family.scope), "sid": family.sid,
            "tid": family.tenant_id, "exp": int(row.expires_at), "iat": int(row.issued_at),
        }
        if family.jkt is not None:
            body["cnf"] = {"jkt": family.jkt}
        return body
