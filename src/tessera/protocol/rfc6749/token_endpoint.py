"""The token endpoint (RFC 6749 §3.2): parse, authenticate the client, dispatch, respond."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from tessera.core.clients import Client
from tessera.core.scopes import format_scope
from tessera.protocol.clients import ClientAuthenticator
from tessera.protocol.errors import (
    OAuthError,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from tessera.protocol.http import (
    OAuthRequest,
    OAuthResponse,
    Params,
    error_response,
    json_response,
    parse_params,
)
from tessera.store.ports import StoreError

__all__ = ["GrantHandler", "TokenEndpoint", "TokenObserver", "TokenResult"]

_log = logging.getLogger("tessera.protocol")


@dataclass(frozen=True, slots=True)
class TokenResult:
    access_token: str
    expires_in: int
    scope: frozenset[str]
    refresh_token: str | None = None
    id_token: str | None = None
    issued_token_type: str | None = None
    token_type: str = "Bearer"


TokenObserver = Callable[[str, str | None, float], None]
"""Called after every token request with (grant type, OAuth error code or None, seconds)."""


class GrantHandler(Protocol):
    grant_type: str

    async def handle(self, request: OAuthRequest, params: Params, client: Client) -> TokenResult:
        """Issue tokens for an authenticated client, or raise an ``OAuthError``."""


class TokenEndpoint:
    def __init__(self, authenticator: ClientAuthenticator, grants: Iterable[GrantHandler],
                 *, max_body: int, observer: TokenObserver | None = None,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self._authenticator = authenticator
        self._grants = {g.grant_type: g for g in grants}
        self._max_body = max_body
        self._observer = observer
        self._timer = timer

    @property
    def grant_types(self) -> list[str]:
        return sorted(self._grants)

    async def handle(self, request: OAuthRequest) -> OAuthResponse:
        started = self._timer()
        grant_type = "unknown"
        error: OAuthError | None = None
        try:
            params = parse_params(request, max_body=self._max_body)
            grant = self._select_grant(params)
            grant_type = grant.grant_type
            client = await self._authenticator.authenticate(request, params)
            self._check_client_may_use(client, grant.grant_type)
            return self._respond(await grant.handle(request, params, client))
        except OAuthError as exc:
            if exc.detail:
                _log.info("token request refused: %s (%s)", exc.error, exc.detail)
            error = exc
        except StoreError as exc:
            _log.warning("token request failed on the store: %s", exc)
            error = TemporarilyUnavailable("try again shortly")
        finally:
            if self._observer is not None:
                self._observer(grant_type, error.error if error else None,
                               self._timer() - started)
        assert error is not None
        return error_response(error)

    def _select_grant(self, params: Params) -> GrantHandler:
        grant_type = params.require("grant_type")
        grant = self._grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantType("the grant type is not supported",
                                       detail=f"grant_type {grant_type[:60]!r}")
        return grant

    @staticmethod
    def _check_client_may_use(client: Client, grant_type: str) -> None:
        if not client.allows_grant(grant_type):
            raise UnauthorizedClient("the client may not use this grant type")

    @staticmethod
    def _respond(result: TokenResult) -> OAuthResponse:
        body: dict[str, object] = {
            "access_token": result.access_token,
            "token_type": result.token_type,
            "expires_in": result.expires_in,
            "scope": format_scope(result.scope),
        }
        if result.refresh_token is not None:
            body["refresh_token"] = result.refresh_token
        if result.id_token is not None:
            body["id_token"] = result.id_token
        if result.issued_token_type is not None:
            body["issued_token_type"] = result.issued_token_type
        return json_response(body)
