"""The token endpoint (RFC 6749 §3.2): parse, authenticate the client, dispatch, respond.

    parse_params → select_grant → authenticate_client → check_client_may_use
      → check_dpop (RFC 9449 §5: a ``DPoP`` header must carry a valid proof for this
        endpoint; its key's thumbprint is handed to the grant, which binds the tokens)
      → grant.handle → respond (``token_type: DPoP`` and a fresh ``DPoP-Nonce`` when bound)
"""

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
    InvalidDPoPProof,
    OAuthError,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
    UseDPoPNonce,
)
from tessera.protocol.http import (
    OAuthRequest,
    OAuthResponse,
    Params,
    error_response,
    json_response,
    parse_params,
)
from tessera.protocol.rfc9449 import (
    InvalidProof,
    ProofChecker,
    ReplayCacheUnavailable,
    UseNonce,
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

    async def handle(self, request: OAuthRequest, params: Params, client: Client, *,
                     jkt: str | None = None) -> TokenResult:
        """Issue tokens for an authenticated client, or raise an ``OAuthError``.

        ``jkt``: the RFC 7638 thumbprint of the key of a valid DPoP proof sent with the
        request (RFC 9449 §5): bind the access token to it (``cnf.jkt``), and a public
        client's refresh token too."""


class TokenEndpoint:
    def __init__(self, authenticator: ClientAuthenticator, grants: Iterable[GrantHandler],
                 *, max_body: int, observer: TokenObserver | None = None,
                 timer: Callable[[], float] = time.perf_counter,
                 dpop: ProofChecker | None = None, url: str | None = None) -> None:
        """``dpop`` enables DPoP (RFC 9449); ``url`` is this endpoint's URL as advertised
        in the metadata, the ``htu`` proofs must name (required with ``dpop``)."""
        if dpop is not None and url is None:
            raise ValueError("DPoP needs the token endpoint's URL")
        self._authenticator = authenticator
        self._grants = {g.grant_type: g for g in grants}
        self._max_body = max_body
        self._observer = observer
        self._timer = timer
        self._dpop = dpop
        self._url = url or ""

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
            jkt = await self._check_dpop(request)
            result = await grant.handle(request, params, client, jkt=jkt)
            return self._respond(result, dpop_nonce=self._fresh_nonce(jkt))
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

    async def _check_dpop(self, request: OAuthRequest) -> str | None:
        """RFC 9449 §5: the thumbprint of the key of the request's valid DPoP proof;
        None without a ``DPoP`` header (or with DPoP disabled: the header is ignored)."""
        proof = request.headers.get("dpop")
        if self._dpop is None or proof is None:
            return None
        try:
            checked = await self._dpop.check((proof,), method=request.method, url=self._url)
        except UseNonce as exc:
            raise UseDPoPNonce(exc.description, detail=exc.detail, nonce=exc.nonce) from None
        except ReplayCacheUnavailable as exc:
            raise TemporarilyUnavailable("try again shortly", detail=str(exc)) from None
        except InvalidProof as exc:
            raise InvalidDPoPProof("the DPoP proof is invalid", detail=str(exc)) from None
        return checked.jkt

    def _fresh_nonce(self, jkt: str | None) -> str | None:
        return self._dpop.fresh_nonce() if self._dpop is not None and jkt else None

    @staticmethod
    def _respond(result: TokenResult, *, dpop_nonce: str | None = None) -> OAuthResponse:
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
        response = json_response(body)
        if dpop_nonce is not None:
            response.headers["dpop-nonce"] = dpop_nonce
        return response
