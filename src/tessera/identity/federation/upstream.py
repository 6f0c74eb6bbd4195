"""The relying-party side of one upstream OpenID Connect provider.

The OAuth 2.0 client protocol is Authlib's, framework-free parts (``authlib.oauth2``: the
authorization URL with ``state``, ``nonce`` and PKCE S256, the token request body, the
callback parsed and its ``state`` compared), over httpx (its ``httpx_client`` integration
is deprecated in favour of httpx2, which Tessera does not use); ID tokens,
logout tokens and security event tokens are verified with ``tessera.jose`` against the provider's
JWKS. Nothing here parses JOSE by hand.

Keys: the JWKS is cached; a token signed by a ``kid`` the cache does not know makes one
refetch (the provider rotated), then the token is refused. Every call has a bounded
timeout; an unreachable, slow or failing provider raises ``UpstreamUnavailable``, a
malformed or invalid answer ``UpstreamRefused`` (the reason is logged, nothing stored).

Error tree::

    UpstreamError
    ├── UpstreamUnavailable   timeout, connection refused, 5xx
    └── UpstreamRefused       bad metadata, bad token, bad signature, wrong claims
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tessera import jose
from tessera.core.urls import is_loopback_host

__all__ = ["ALGORITHMS", "AuthorizationStart", "UpstreamClient", "UpstreamError",
           "UpstreamRefused", "UpstreamUnavailable", "issuer_allowed"]

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")
"""Asymmetric algorithms only: ``none`` and HMAC (a key the client also holds) never."""
_METADATA_TTL = 3600.0
_MAX_BYTES = 256 * 1024


class UpstreamError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UpstreamUnavailable(UpstreamError):
    """The provider did not answer in time, refused the connection or failed (5xx)."""


class UpstreamRefused(UpstreamError):
    """The provider's answer is malformed or does not validate."""


def issuer_allowed(own_issuer: str, upstream_issuer: str) -> bool:
    """https always; http only for a loopback upstream while Tessera's own issuer is http
    on loopback (development and tests)."""
    up = urlsplit(upstream_issuer)
    if up.scheme == "https" and up.netloc and not up.fragment and not up.query:
        return True
    own = urlsplit(own_issuer)
    return (up.scheme == "http" and own.scheme == "http" and is_loopback_host(own.hostname)
            and is_loopback_host(up.hostname) and not up.fragment and not up.query)


@dataclass(frozen=True, slots=True)
class AuthorizationStart:
    url: str
    state: str
    nonce: str
    code_verifier: str


class UpstreamClient:
    """One provider's endpoints, keys and calls. Shared by every request of the process
    (metadata and keys are cached); safe to use concurrently."""

    def __init__(self, *, issuer: str, client_id: str, client_secret: str, scope: str,
                 redirect_uri: str, timeout: float, leeway: int,
                 transport: httpx.AsyncBaseTransport | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.redirect_uri = redirect_uri
        self._timeout = timeout
        self._leeway = leeway
        self._transport = transport
        self._now = now
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: jose.JwkSet | None = None
        self._lock = asyncio.Lock()

    # HTTP ------------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self._timeout, transport=self._transport,
                                 follow_redirects=False)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._http() as client:
                response = await client.get(url, headers={"accept": "application/json"})
        except httpx.TimeoutException:
            raise UpstreamUnavailable(f"timeout fetching {url}") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{type(exc).__name__} fetching {url}") from None
        return _json_body(response, url)

    # metadata and keys --------------------------------------------------------------------
    async def metadata(self) -> dict[str, Any]:
        """OpenID Connect Discovery 1.0 §4: the document's ``issuer`` must equal ours."""
        if self._metadata is not None and self._now() - self._metadata_at < _METADATA_TTL:
            return self._metadata
        async with self._lock:
            if self._metadata is not None and self._now() - self._metadata_at < _METADATA_TTL:
                return self._metadata
            doc = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if doc.get("issuer") != self.issuer:
                raise UpstreamRefused("discovery document names another issuer")
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                value = doc.get(name)
                if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                    raise UpstreamRefused(f"discovery document lacks a usable {name}")
            self._metadata, self._metadata_at = doc, self._now()
            return doc

    async def _key_set(self, *, refresh: bool = False) -> jose.JwkSet:
        if self._keys is not None and not refresh:
            return self._keys
        doc = await self._get_json((await self.metadata())["jwks_uri"])
        if not isinstance(doc.get("keys"), list):
            raise UpstreamRefused("the JWKS document has no keys")
        try:
            self._keys = jose.JwkSet(doc)
        except jose.JoseError:
            raise UpstreamRefused("the JWKS document is malformed") from None
        return self._keys

    async def verify_jwt(self, value: str, *, typ: str | None = None) -> dict[str, Any]:
        """The claims of a JWT signed by one of the provider's keys (asymmetric algorithms
        only); an unknown ``kid`` refetches the JWKS once. Claims are checked by callers."""
        if not isinstance(value, str) or len(value) > 16 * 1024 or value.count(".") != 2:
            raise UpstreamRefused("not a compact JWS")
        for attempt in (0, 1):
            keys = await self._key_set(refresh=attempt == 1)
            try:
                header, claims = keys.decode(value, algorithms=ALGORITHMS)
            except jose.JoseError as exc:
                if exc.reason != "unknown_kid":
                    raise UpstreamRefused(f"invalid token: {exc.detail or exc.reason}") \
                        from None
                if attempt == 0:
                    continue
                raise UpstreamRefused("signed by a key the provider does not publish") from None
            declared = header.get("typ")
            if typ is not None and declared is not None and str(declared).lower() not in (
                    typ, f"application/{typ}"):
                raise UpstreamRefused(f"the token's typ is {declared!r}, not {typ}")
            return claims
        raise UpstreamRefused("unreachable")  # pragma: no cover

    def check_claims(self, claims: dict[str, Any], **options: dict[str, Any]) -> None:
        """``iss`` and ``aud`` exactly ours, ``exp``/``nbf``/``iat`` with the leeway."""
        try:
            jose.check_registered_claims(
                claims, now=self._now(), leeway=self._leeway,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id}, **options)
        except jose.JoseError as exc:
            raise UpstreamRefused(f"claims rejected: {exc.detail}") from None

    # the provider's own APIs (Shared Signals poll) --------------------------------------
    async def service_token(self) -> str:
        """An access token for the provider's own APIs: the client credentials grant
        (RFC 6749 §4.4) with Tessera's client id and secret at the provider."""
        metadata = await self.metadata()
        body = prepare_token_request("client_credentials")
        try:
            async with self._http() as client:
                response = await client.post(
                    metadata["token_endpoint"], content=body,
                    auth=httpx.BasicAuth(self.client_id, self._secret),
                    headers={"content-type": "application/x-www-form-urlencoded",
                             "accept": "application/json"})
        except httpx.TimeoutException:
            raise UpstreamUnavailable("timeout at the token endpoint") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{type(exc).__name__} at the token endpoint") from None
        token = _json_body(response, "the token endpoint")
        if not isinstance(token.get("access_token"), str):
            raise UpstreamRefused("the token response has no access_token")
        return str(token["access_token"])

    async def post_json(self, url: str, payload: dict[str, Any], *, bearer: str
                        ) -> dict[str, Any]:
        try:
            async with self._http() as client:
                response = await client.post(url, json=payload, headers={
                    "authorization": f"Bearer {bearer}", "accept": "application/json"})
        except httpx.TimeoutException:
            raise UpstreamUnavailable(f"timeout at {url}") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{type(exc).__name__} at {url}") from None
        return _json_body(response, url)

    # the authorization code flow --------------------------------------------------------
    async def start(self, *, acr_values: str | None = None, max_age: int | None = None,
                    prompt: str | None = None, login_hint: str | None = None
                    ) -> AuthorizationStart:
        metadata = await self.metadata()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        extra: dict[str, Any] = {"nonce": nonce,
                                 "code_challenge": create_s256_code_challenge(verifier),
                                 "code_challenge_method": "S256"}
        if acr_values:
            extra["acr_values"] = acr_values
        if max_age is not None:
            extra["max_age"] = str(max_age)
        if prompt:
            extra["prompt"] = prompt
        if login_hint:
            extra["login_hint"] = login_hint
        url = prepare_grant_uri(metadata["authorization_endpoint"], self.client_id, "code",
                                redirect_uri=self.redirect_uri, scope=self.scope, state=state,
                                **extra)
        return AuthorizationStart(url=url, state=state, nonce=nonce, code_verifier=verifier)

    async def finish(self, *, code: str, code_verifier: str, nonce: str,
                     max_age: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Exchange the code, validate the ID token (OIDC Core §3.1.3.7) and fetch
        userinfo; returns (ID token claims, userinfo claims)."""
        metadata = await self.metadata()
        try:
            async with self._http() as client:
                body = prepare_token_request("authorization_code", code=code,
                                             redirect_uri=self.redirect_uri,
                                             code_verifier=code_verifier)
                response = await client.post(
                    metadata["token_endpoint"], content=body,
                    auth=httpx.BasicAuth(self.client_id, self._secret),
                    headers={"content-type": "application/x-www-form-urlencoded",
                             "accept": "application/json"})
                token = _json_body(response, "the token endpoint")
                if str(token.get("token_type", "")).lower() not in ("bearer", "dpop"):
                    raise UpstreamRefused("the token response has no bearer token_type")
                access_token = token.get("access_token")
                if not isinstance(access_token, str):
                    raise UpstreamRefused("the token response has no access_token")
                id_token = token.get("id_token")
                if not isinstance(id_token, str):
                    raise UpstreamRefused("the token response has no id_token")
                claims = await self.verify_jwt(id_token)
                self.check_claims(claims, sub={"essential": True},
                                  exp={"essential": True}, iat={"essential": True},
                                  nonce={"essential": True, "value": nonce})
                azp = claims.get("azp")
                aud = claims.get("aud")
                if isinstance(aud, list) and len(aud) > 1 and azp != self.client_id:
                    raise UpstreamRefused("several audiences and azp is not ours")
                if max_age is not None:
                    auth_time = claims.get("auth_time")
                    if not isinstance(auth_time, (int, float)) or \
                            auth_time + max_age + self._leeway < self._now():
                        raise UpstreamRefused("auth_time missing or older than max_age")
                userinfo: dict[str, Any] = {}
                endpoint = metadata.get("userinfo_endpoint")
                if isinstance(endpoint, str):
                    response = await client.get(endpoint, headers={
                        "authorization": f"Bearer {access_token}",
                        "accept": "application/json"})
                    userinfo = _json_body(response, endpoint)
                    if userinfo.get("sub") != claims["sub"]:
                        raise UpstreamRefused("userinfo names another subject")
        except httpx.TimeoutException:
            raise UpstreamUnavailable("timeout at the token or userinfo endpoint") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{type(exc).__name__} at the token endpoint") from None
        return claims, userinfo


def _json_body(response: httpx.Response, url: str) -> dict[str, Any]:
    if response.status_code >= 500:
        raise UpstreamUnavailable(f"{url} answered {response.status_code}")
    if response.status_code != 200:
        raise UpstreamRefused(f"{url} answered {response.status_code}")
    if len(response.content) > _MAX_BYTES:
        raise UpstreamRefused(f"{url} answered too much")
    try:
        doc = response.json()
    except ValueError:
        raise UpstreamRefused(f"{url} did not answer JSON") from None
    if not isinstance(doc, dict):
        raise UpstreamRefused(f"{url} did not answer a JSON object")
    return doc
