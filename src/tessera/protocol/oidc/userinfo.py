"""UserInfo endpoint — OIDC Core §5.3. Bearer token in the Authorization header only
(RFC 6750 §2.1; tokens in URLs are refused, DESIGN §9)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from tessera.protocol.errors import (
    InvalidRequest,
    InvalidToken,
    OAuthError,
    TemporarilyUnavailable,
)
from tessera.protocol.http import OAuthRequest, OAuthResponse, error_response, json_response
from tessera.protocol.token_state import AccessTokenState, TokenInactive
from tessera.store.ports import Store, StoreError

__all__ = ["UserInfoEndpoint", "bearer_token"]

_log = logging.getLogger("tessera.protocol")


def _token_in_query(query: str) -> bool:
    """RFC 6750 §2.3 (URI query parameter) is refused: tokens in URLs leak into logs."""
    try:
        names = {name for name, _ in parse_qsl(query, keep_blank_values=True)}
    except ValueError:
        return True
    return "access_token" in names


def bearer_token(request: OAuthRequest) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidToken("a bearer token is required")
    return value.strip()


class UserInfoEndpoint:
    def __init__(self, access_tokens: AccessTokenState, store: Store, *, issuer: str) -> None:
        self._access_tokens = access_tokens
        self._store = store
        self._issuer = issuer

    async def handle(self, request: OAuthRequest) -> OAuthResponse:
        try:
            if _token_in_query(request.query):
                raise InvalidRequest("send the access token in the Authorization header")
            token = bearer_token(request)
            try:
                claims = await self._access_tokens.check(token, audience=self._issuer)
            except TokenInactive as exc:
                raise InvalidToken("the access token is not active", detail=exc.reason) from None
            if "openid" not in str(claims.get("scope", "")).split():
                raise InvalidToken("the token lacks the openid scope")
            async with self._store.unit_of_work(read_only=True) as uow:
                user = await uow.users.get(str(claims["sub"]))
            if user is None:
                raise InvalidToken("the access token is not active")
            return json_response({"sub": user.user_id, "preferred_username": user.username,
                                  "tid": user.tenant_id})
        except OAuthError as exc:
            return error_response(exc)
        except StoreError as exc:
            _log.warning("userinfo failed on the store: %s", exc)
            return error_response(TemporarilyUnavailable("try again shortly"))
