"""Client lookup (cached) and client authentication (RFC 6749 §2.3, OIDC Core §9).

Methods: ``client_secret_basic``, ``client_secret_post`` and ``none`` (public clients).
Secrets are 256-bit random values stored as SHA-256 and compared in constant time.
``private_key_jwt`` and workload identity (``client_assertion``, RFC 7523 §2.2) are
``client_assertion``'s. A request may use one method only (RFC 6749 §2.3), and a client
only the method it registered: a key client has no secret, a secret client no keys.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote

from tessera.application.standing import TenantDirectory, client_tenant
from tessera.core.clients import Client
from tessera.core.clock import Clock
from tessera.core.secrets import constant_time_equal, token_hash
from tessera.core.ttl_cache import TtlCache
from tessera.protocol.client_assertion import (
    CLIENT_ASSERTION_TYPE,
    ClientAssertions,
    unverified_client_id,
)
from tessera.protocol.errors import InvalidClient, InvalidRequest, TooManyRequests
from tessera.protocol.http import OAuthRequest, Params, has_control_chars
from tessera.protocol.rfc8705 import (
    MTLS_AUTH_METHODS,
    CertificateError,
    load_certificate,
    public_key_registered,
    subject_matches,
)
from tessera.protocol.throttle import Throttle
from tessera.store.ports import Store

__all__ = ["ASSERTION_AUTH_METHODS", "AUTH_METHODS", "ClientAuthenticator", "ClientDirectory"]

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
ASSERTION_AUTH_METHODS = ("private_key_jwt", *MTLS_AUTH_METHODS)
"""Methods without a shared secret, advertised besides ``AUTH_METHODS``: client
assertions (RFC 7523) and mutual TLS (RFC 8705)."""
_DUMMY_HASH = token_hash("tessera-dummy-secret")


class ClientDirectory:
    """Reads clients through a short per-process cache (clients change rarely; a miss
    always asks the store, so new clients work at once, changes within ``ttl``)."""

    def __init__(self, store: Store, clock: Clock, *, ttl: float = 5.0) -> None:
        self._store = store
        self._clock = clock
        self._cache: TtlCache[Client] = TtlCache(ttl)

    async def get(self, client_id: str) -> Client | None:
        now = self._clock.now()
        cached, client = self._cache.fresh(client_id, now)
        if cached:
            return client
        async with self._store.unit_of_work(read_only=True) as uow:
            client = await uow.clients.get(client_id)
        if client is not None:
            self._cache.put(client_id, client, now)
        return client

    def forget(self, client_id: str) -> None:
        self._cache.forget(client_id)

    def clear(self) -> None:
        self._cache.forget()


def _certificate_problem(client: Client, pem: str | None) -> str | None:
    if pem is None:
        return "no client certificate presented (mutual TLS)"
    try:
        certificate = load_certificate(pem)
    except CertificateError as exc:
        return str(exc)
    if client.auth_method == "tls_client_auth":
        if client.tls_subject_dn is None or not subject_matches(certificate,
                                                                client.tls_subject_dn):
            return "the certificate's subject DN is not the registered one"
        return None
    if client.jwks is None or not public_key_registered(certificate, client.jwks):
        return "the certificate's key is not one the client registered"
    return None


def _basic_credentials(header: str) -> tuple[str, str]:
    # ValueError: headers arrive latin-1 decoded, and b64decode refuses non-ASCII text
    # with a plain ValueError (binascii.Error is its subclass).
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials", basic=True) from None
    client_id, sep, secret = raw.partition(":")
    if not sep or not client_id:
        raise InvalidClient("malformed Basic credentials", basic=True)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    client_id = unquote(client_id.replace("+", " "))
    secret = unquote(secret.replace("+", " "))
    if has_control_chars(client_id) or has_control_chars(secret):
        raise InvalidClient("malformed Basic credentials", basic=True)
    return client_id, secret


class ClientAuthenticator:
    def __init__(self, directory: ClientDirectory, failures: Throttle | None = None,
                 tenants: TenantDirectory | None = None,
                 assertions: ClientAssertions | None = None) -> None:
        """``assertions``: accept ``client_assertion`` (private_key_jwt, workload
        identity); without it such a request is refused."""
        self._directory = directory
        self._failures = failures
        self._tenants = tenants
        self._assertions = assertions

    async def authenticate(self, request: OAuthRequest, params: Params,
                           *, allow_public: bool = True) -> Client:
        """Authenticate the client of ``request`` or raise ``InvalidClient``: also when
        its tenant is suspended (``standing``)."""
        client = await self._authenticate(request, params, allow_public=allow_public)
        if self._tenants is not None and await self._tenants.suspended(client_tenant(client)):
            raise InvalidClient("client authentication failed",
                                basic=request.headers.get("authorization", "")[:6].lower()
                                == "basic ", detail="the client's tenant is suspended")
        return client

    async def _authenticate(self, request: OAuthRequest, params: Params,
                            *, allow_public: bool) -> Client:
        authorization = request.headers.get("authorization", "")
        basic = authorization[:6].lower() == "basic "
        if "client_assertion" in params or "client_assertion_type" in params:
            if basic or "client_secret" in params:
                raise InvalidRequest("use one client authentication method only")
            return await self._check_assertion(params, host=request.client_host)
        if basic:
            if "client_secret" in params:
                raise InvalidRequest("use one client authentication method only")
            basic_id, basic_secret = _basic_credentials(authorization)
            body_id = params.get("client_id")
            if body_id is not None and body_id != basic_id:
                raise InvalidRequest("client_id does not match the authenticated client")
            return await self._check_secret(basic_id, basic_secret, basic=True,
                                            host=request.client_host)
        body_client_id = params.get("client_id")
        if body_client_id is None:
            raise InvalidClient("client authentication required")
        client_id = body_client_id
        secret = params.get("client_secret")
        if secret is not None:
            return await self._check_secret(client_id, secret, basic=False,
                                            host=request.client_host)
        client = await self._directory.get(client_id)
        if (client is not None and not client.disabled
                and client.auth_method in MTLS_AUTH_METHODS):
            return await self._check_certificate(client, request)
        if client is None or client.disabled or not client.public:
            raise InvalidClient("client authentication failed",
                                detail=f"no credentials for client {client_id!r}")
        if not allow_public:
            raise InvalidClient("this endpoint needs a confidential client")
        return client

    async def _check_certificate(self, client: Client, request: OAuthRequest) -> Client:
        """RFC 8705 §2: the connection's client certificate authenticates the client.
        ``tls_client_auth``: the TLS layer verified the chain against the client CA; the
        subject DN must be the registered one. ``self_signed_tls_client_auth``: its
        public key must be one the client registered."""
        key = f"{client.client_id[:64]}\x00{request.client_host}"
        if self._failures is not None and await self._failures.blocked(key):
            raise TooManyRequests("too many failed client authentications; slow down")
        problem = _certificate_problem(client, request.client_cert)
        if problem is not None:
            if self._failures is not None:
                await self._failures.hit(key)
            raise InvalidClient("client authentication failed", detail=problem)
        return client

    async def _check_assertion(self, params: Params, *, host: str | None) -> Client:
        """RFC 7521 §4.2 / RFC 7523 §2.2: ``client_assertion_type`` jwt-bearer and one
        assertion; ``client_id`` optional (then the assertion's ``iss``), and when sent it
        must be the client the assertion is checked for."""
        if params.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise InvalidRequest("client_assertion_type must be "
                                 "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        assertion = params.require("client_assertion")
        client_id = params.get("client_id") or unverified_client_id(assertion)
        if client_id is None:
            raise InvalidClient("client authentication failed",
                                detail="client assertion names no client")
        key = f"{client_id[:64]}\x00{host}"
        if self._failures is not None and await self._failures.blocked(key):
            raise TooManyRequests("too many failed client authentications; slow down")
        client = await self._directory.get(client_id)
        try:
            if self._assertions is None:
                raise InvalidClient("client authentication failed",
                                    detail="client assertions are not enabled")
            if client is None or client.disabled or client.public:
                raise InvalidClient("client authentication failed",
                                    detail=f"unknown or disabled client {client_id[:64]!r}")
            await self._assertions.authenticate(client, assertion)
        except InvalidClient:
            if self._failures is not None:
                await self._failures.hit(key)
            raise
        return client

    async def _check_secret(self, client_id: str, secret: str, *, basic: bool,
                            host: str | None) -> Client:
        key = f"{client_id[:64]}\x00{host}"
        if self._failures is not None and await self._failures.blocked(key):
            raise TooManyRequests("too many failed client authentications; slow down")
        client = await self._directory.get(client_id)
        stored = client.secret_hash if client is not None and client.secret_hash else _DUMMY_HASH
        matches = constant_time_equal(token_hash(secret), stored)
        if (client is None or client.disabled or client.public or not client.uses_secret
                or not matches):
            if self._failures is not None:
                await self._failures.hit(key)
            raise InvalidClient("client authentication failed", basic=basic,
                                detail=f"bad secret or unknown client {client_id[:64]!r}")
        return client
