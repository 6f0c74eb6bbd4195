"""UserInfo endpoint — OIDC Core §5.3. Bearer token in the Authorization header only
(RFC 6750 §2.1; tokens in URLs are refused, DESIGN §9), or a DPoP-bound token with the
``DPoP`` scheme and a proof for this endpoint (RFC 9449 §7); a bound token sent as
Bearer is refused."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from tessera.core.federation import profile_claims
from tessera.protocol.errors import (
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    TemporarilyUnavailable,
    UseDPoPNonce,
)
from tessera.protocol.http import OAuthRequest, OAuthResponse, error_response, json_response
from tessera.protocol.rfc8705 import CertificateError, certificate_thumbprint, load_certificate
from tessera.protocol.rfc9449 import (
    InvalidProof,
    ProofChecker,
    ReplayCacheUnavailable,
    UseNonce,
    challenge,
)
from tessera.protocol.token_state import AccessTokenState, TokenInactive
from tessera.store.ports import Store, StoreError

__all__ = ["UserInfoEndpoint", "bearer_token"]

_log = logging.getLogger("tessera.protocol")
_BOUND = "dpop_binding"


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


def _dpop_token(request: OAuthRequest) -> str | None:
    """The token of an ``Authorization: DPoP <token>`` header (RFC 9449 §7.1), else None."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "dpop" else None


def _presented_thumbprint(request: OAuthRequest) -> str | None:
    """RFC 8705 §3: ``x5t#S256`` of the connection's client certificate, if any."""
    if request.client_cert is None:
        return None
    try:
        return certificate_thumbprint(load_certificate(request.client_cert))
    except CertificateError:
        return None


class UserInfoEndpoint:
    def __init__(self, access_tokens: AccessTokenState, store: Store, *, issuer: str,
                 dpop: ProofChecker | None = None) -> None:
        self._access_tokens = access_tokens
        self._store = store
        self._issuer = issuer
        self._dpop = dpop

    async def handle(self, request: OAuthRequest) -> OAuthResponse:
        dpop_token = _dpop_token(request) if self._dpop is not None else None
        try:
            return await self._userinfo(request, dpop_token)
        except OAuthError as exc:
            response = error_response(exc)
            if self._dpop is not None and exc.status == 401 and (
                    dpop_token is not None or exc.detail == _BOUND):
                # RFC 9449 §7.1: a DPoP presentation, or a bound token sent as Bearer,
                # is answered with a DPoP challenge
                response.headers["www-authenticate"] = challenge(
                    self._dpop.algorithms, exc.error, exc.description)
            return response
        except StoreError as exc:
            _log.warning("userinfo failed on the store: %s", exc)
            return error_response(TemporarilyUnavailable("try again shortly"))

    async def _userinfo(self, request: OAuthRequest, dpop_token: str | None) -> OAuthResponse:
        if _token_in_query(request.query):
            raise InvalidRequest("send the access token in the Authorization header")
        jkt = None
        if dpop_token is not None:
            token, jkt = dpop_token, await self._proof_key(request, dpop_token)
        else:
            token = bearer_token(request)
        try:
            verified = await self._access_tokens.check(token, audience=self._issuer, jkt=jkt,
                                                       x5t=_presented_thumbprint(request))
        except TokenInactive as exc:
            if exc.reason == _BOUND and jkt is None:
                raise InvalidToken("the access token is DPoP-bound: use the DPoP scheme",
                                   detail=exc.reason) from None
            raise InvalidToken("the access token is not active", detail=exc.reason) from None
        if "openid" not in verified.scopes:
            raise InvalidToken("the token lacks the openid scope")
        async with self._store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get(verified.user_id)
            profile = await uow.federation.profile_of(verified.user_id)
        if user is None:
            raise InvalidToken("the access token is not active")
        return json_response({**profile_claims(profile, set(verified.scopes)),
                              "sub": user.user_id,
                              "preferred_username": user.username, "tid": user.tenant_id})

    async def _proof_key(self, request: OAuthRequest, token: str) -> str:
        """RFC 9449 §7.1: the key thumbprint of a valid proof for this request."""
        assert self._dpop is not None
        proof = request.headers.get("dpop")
        try:
            checked = await self._dpop.check((proof,) if proof is not None else (),
                                             method=request.method,
                                             url=f"{self._issuer}/userinfo",
                                             access_token=token)
        except UseNonce as exc:
            raise UseDPoPNonce(exc.description, detail=exc.detail, status=401,
                               nonce=exc.nonce) from None
        except ReplayCacheUnavailable as exc:
            raise TemporarilyUnavailable("try again shortly", detail=str(exc)) from None
        except InvalidProof as exc:
            raise InvalidDPoPProof("the DPoP proof is invalid", detail=str(exc),
                                   status=401) from None
        return checked.jkt
