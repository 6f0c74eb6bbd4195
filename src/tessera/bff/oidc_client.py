"""The BFF as a confidential OIDC client of the identity service.

- Discovery (OIDC Discovery 1.0 §4, RFC 8414): endpoints and ``jwks_uri`` are read from
  ``{identity}/.well-known/openid-configuration``; its ``issuer`` must equal the
  configured issuer exactly (§4.3).
- Authorization request (RFC 6749 §4.1.1, RFC 7636 S256, OIDC Core §3.1.2.1 ``nonce``):
  Authlib builds the URL and the PKCE challenge.
- Token requests (code, refresh; RFC 6749 §4.1.3, §6): Authlib prepares the form,
  httpx sends it with ``client_secret_basic``; a DPoP proof (RFC 9449 §5) rides along
  when the session has a key, retried once with the server's nonce when asked (§8).
- ID token (OIDC Core §3.1.3.7): ``tessera.jose`` checks the signature against the JWKS
  (algorithm allowlist), ``iss`` and ``aud`` exactly, ``azp``, ``exp``/``iat``, ``nonce``.
- Revocation (RFC 7009) and introspection (RFC 7662) with the client's credentials.

Errors::

    IdentityError
     ├── TokenRefused        the identity service answered an OAuth error (``error``)
     ├── IdTokenInvalid      the ID token failed a check (``detail`` says which)
     └── IdentityUnavailable it could not be asked, or answered nonsense
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tessera import jose
from tessera.bff.settings import BffSettings
from tessera.core.clock import Clock
from tessera.core.json_body import json_object
from tessera.protocol.rfc9449 import ProofSigner

__all__ = ["ID_TOKEN_ALGS", "IdTokenInvalid", "IdentityClient", "IdentityError",
           "IdentityUnavailable", "TokenRefused", "TokenSet"]

ID_TOKEN_ALGS: Final = ("RS256", "ES256", "EdDSA")
"""Accepted ID token algorithms (never ``none`` or HS*)."""

_log = logging.getLogger("tessera.bff")
_MAX_BODY: Final = 256 * 1024
_LEEWAY: Final = 60


class IdentityError(Exception):
    """Base of the client's errors."""


class TokenRefused(IdentityError):
    def __init__(self, error: str, status: int, nonce: str | None = None) -> None:
        super().__init__(f"the identity service refused: {error} (HTTP {status})")
        self.error = error
        self.status = status
        self.nonce = nonce


class IdTokenInvalid(IdentityError):
    pass


class IdentityUnavailable(IdentityError):
    pass


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    token_type: str
    expires_at: float
    refresh_token: str | None
    scope: str
    id_token: str | None


class IdentityClient:
    """One per BFF process; ``aclose`` when done. ``transport`` serves every call (tests)."""

    def __init__(self, settings: BffSettings, *, clock: Clock,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._http = httpx.AsyncClient(transport=transport, timeout=settings.identity_timeout,
                                       follow_redirects=False)
        self._auth = (settings.client_id, settings.client_secret.get_secret_value())
        self._metadata: dict[str, Any] | None = None
        self._keys: jose.JwkSet | None = None
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    # discovery -------------------------------------------------------------------------
    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            async with self._lock:
                if self._metadata is None:
                    self._metadata = await self._discover()
        return self._metadata

    async def _discover(self) -> dict[str, Any]:
        url = f"{self._settings.identity_base}/.well-known/openid-configuration"
        body = _object(await self._send("GET", url))
        if body is None or body.get("issuer") != self._settings.issuer:
            raise IdentityUnavailable("discovery: no document, or its issuer is not "
                                      f"{self._settings.issuer}")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(body.get(name), str):
                raise IdentityUnavailable(f"discovery: no {name}")
        return body

    async def endpoint(self, name: str) -> str | None:
        """An endpoint of the discovery document, reached at ``identity_url`` when set
        (the browser-facing ``authorization_endpoint`` and ``end_session_endpoint`` are
        used as published)."""
        value = (await self.metadata()).get(name)
        if not isinstance(value, str):
            return None
        if self._settings.identity_url and value.startswith(self._settings.issuer + "/"):
            return self._settings.identity_base + value[len(self._settings.issuer):]
        return value

    # authorization request ---------------------------------------------------------------
    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        endpoint = (await self.metadata())["authorization_endpoint"]
        scopes = self._settings.scope.split()
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        url: str = prepare_grant_uri(
            endpoint, client_id=self._settings.client_id, response_type="code",
            redirect_uri=self._settings.redirect_uri, scope=" ".join(scopes), state=state,
            nonce=nonce, code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256")
        return url

    async def end_session_url(self, id_token: str) -> str | None:
        """RP-Initiated Logout 1.0 §2: where the browser ends its identity session."""
        endpoint = (await self.metadata()).get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        query = {"id_token_hint": id_token, "client_id": self._settings.client_id,
                 "post_logout_redirect_uri": self._settings.post_logout_redirect
                 or f"{self._settings.public_url}/"}
        return f"{endpoint}?{urlencode(query)}"

    # token requests ------------------------------------------------------------------------
    async def exchange_code(self, code: str, code_verifier: str,
                            signer: ProofSigner | None) -> TokenSet:
        body = prepare_token_request("authorization_code", code=code,
                                     redirect_uri=self._settings.redirect_uri,
                                     code_verifier=code_verifier)
        return await self._token_request(body, signer)

    async def refresh(self, refresh_token: str, signer: ProofSigner | None) -> TokenSet:
        body = prepare_token_request("refresh_token", refresh_token=refresh_token)
        return await self._token_request(body, signer)

    async def _token_request(self, body: str, signer: ProofSigner | None) -> TokenSet:
        url = await self.endpoint("token_endpoint")
        assert url is not None
        published = (await self.metadata())["token_endpoint"]
        nonce: str | None = None
        for attempt in range(2):
            headers = {"content-type": "application/x-www-form-urlencoded",
                       "accept": "application/json"}
            if signer is not None:  # htu is the endpoint as advertised (RFC 9449 §4.3)
                headers["dpop"] = signer.proof("POST", published, now=self._clock.now(),
                                               nonce=nonce)
            started = self._clock.now()
            response = await self._send("POST", url, content=body, headers=headers,
                                        auth=self._auth)
            try:
                return _token_set(response, started)
            except TokenRefused as exc:
                if exc.error == "use_dpop_nonce" and exc.nonce and attempt == 0 \
                        and signer is not None:
                    nonce = exc.nonce
                    continue
                raise
        raise AssertionError("unreachable")

    # ID token ------------------------------------------------------------------------------
    async def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        keys = await self._key_set(refresh=False)
        try:
            claims = keys.decode(id_token, algorithms=ID_TOKEN_ALGS)[1]
        except jose.JoseError as exc:
            if exc.reason not in ("unknown_kid", "bad_signature"):
                raise IdTokenInvalid(f"id_token: {exc.reason}") from None
            keys = await self._key_set(refresh=True)  # a rotated key: fetch once more
            try:
                claims = keys.decode(id_token, algorithms=ID_TOKEN_ALGS)[1]
            except jose.JoseError as again:
                raise IdTokenInvalid(f"id_token: {again.reason}") from None
        try:
            jose.check_registered_claims(
                claims, now=self._clock.now(), leeway=_LEEWAY,
                iss={"essential": True, "value": self._settings.issuer},
                aud={"essential": True, "value": self._settings.client_id},
                sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
                nonce={"essential": True, "value": nonce})
        except jose.JoseError as exc:
            raise IdTokenInvalid(f"id_token: {exc.detail}") from None
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 \
                and claims.get("azp") != self._settings.client_id:
            raise IdTokenInvalid("id_token: azp is not this client")
        return claims

    async def _key_set(self, *, refresh: bool) -> jose.JwkSet:
        if self._keys is None or refresh:
            url = await self.endpoint("jwks_uri")
            assert url is not None
            body = _object(await self._send("GET", url))
            try:
                self._keys = jose.JwkSet(body or {})
            except jose.JoseError:
                raise IdentityUnavailable("jwks: not a usable JWK set") from None
        return self._keys

    # revocation, introspection ---------------------------------------------------------------
    async def revoke(self, token: str, hint: str) -> None:
        """RFC 7009: best effort is not enough for logout — an error is raised."""
        url = await self.endpoint("revocation_endpoint")
        if url is None:
            raise IdentityUnavailable("discovery: no revocation_endpoint")
        response = await self._send("POST", url, data={"token": token,
                                                       "token_type_hint": hint},
                                    auth=self._auth)
        if response.status_code != 200:
            raise IdentityUnavailable(f"revocation: HTTP {response.status_code}")

    async def is_active(self, token: str) -> bool:
        """RFC 7662 ``active`` of the session's access token."""
        url = await self.endpoint("introspection_endpoint")
        if url is None:
            raise IdentityUnavailable("discovery: no introspection_endpoint")
        response = await self._send("POST", url, data={"token": token,
                                                       "token_type_hint": "access_token"},
                                    auth=self._auth)
        body = _object(response)
        if response.status_code != 200 or body is None \
                or not isinstance(body.get("active"), bool):
            raise IdentityUnavailable(f"introspection: HTTP {response.status_code}")
        return bool(body["active"])

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise IdentityUnavailable(f"{url}: {type(exc).__name__}") from None


def _object(response: httpx.Response) -> dict[str, Any] | None:
    return json_object(response.content, max_bytes=_MAX_BODY)


def _token_set(response: httpx.Response, started: float) -> TokenSet:
    body = _object(response)
    if response.status_code != 200:
        error = body.get("error") if body else None
        if response.status_code in (400, 401) and isinstance(error, str):
            raise TokenRefused(error[:64], response.status_code,
                               response.headers.get("dpop-nonce"))
        raise IdentityUnavailable(f"token endpoint: HTTP {response.status_code}")
    if body is None:
        raise IdentityUnavailable("token endpoint: the answer is not a JSON object")
    access, token_type = body.get("access_token"), body.get("token_type")
    expires_in = body.get("expires_in")
    if not isinstance(access, str) or not access or not isinstance(token_type, str) \
            or token_type.lower() not in ("bearer", "dpop"):
        raise IdentityUnavailable("token endpoint: no usable access_token")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) \
            or expires_in <= 0:
        expires_in = 60  # no lifetime said: assume a short one, refresh early
    refresh, id_token, scope = (body.get("refresh_token"), body.get("id_token"),
                                body.get("scope"))
    return TokenSet(access_token=access, token_type="DPoP" if token_type.lower() == "dpop"
                    else "Bearer", expires_at=started + float(expires_in),
                    refresh_token=refresh if isinstance(refresh, str) else None,
                    scope=scope if isinstance(scope, str) else "",
                    id_token=id_token if isinstance(id_token, str) else None)
