"""Tessera backend-for-frontend (token handler) for single-page apps.

The browser holds only an ``HttpOnly``, ``Secure``, ``SameSite=Strict`` ``__Host-``
session cookie; the BFF is a confidential OAuth client of the identity service that runs
the authorization code flow with PKCE, ``state`` and ``nonce``, keeps the tokens server
side (sealed with AES-256-GCM, in Redis or, for development, in memory), refreshes them,
and proxies the SPA's API calls with the access token attached (DPoP-bound when
configured). See docs/browser-sessions.md.

``create_bff(settings)`` builds the Starlette app; ``tessera bff`` runs it.
"""

from __future__ import annotations

from tessera import _extras

_extras.require("server", "the backend-for-frontend")  # one clear line without the extra
# ruff: noqa: E402 (the check above runs before the imports that would fail)

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.applications import Starlette

from tessera.bff.app import build_app, check_csrf
from tessera.bff.cookies import LOGIN_COOKIE, SESSION_COOKIE, CookieJar
from tessera.bff.oidc_client import IdentityClient
from tessera.bff.proxy import UpstreamProxy
from tessera.bff.sessions import SessionManager
from tessera.bff.settings import CSRF_HEADER, BffSettings
from tessera.bff.vault import MemoryVault, RedisVault, SealedVault, Vault
from tessera.core.clock import Clock, SystemClock
from tessera.keys import Sealer
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings

__all__ = ["CSRF_HEADER", "LOGIN_COOKIE", "SESSION_COOKIE", "BffSettings", "MemoryVault",
           "RedisVault", "Vault", "build_app", "check_csrf", "create_bff", "derive_key"]


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose (HKDF-SHA256, RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"tessera-bff/{purpose}".encode()).derive(secret)


def create_bff(settings: BffSettings, *, clock: Clock | None = None,
               vault: Vault | None = None,
               identity_transport: httpx.AsyncBaseTransport | None = None,
               upstream_transport: httpx.AsyncBaseTransport | None = None,
               revocations: VerifierService | None = None) -> Starlette:
    """The app from settings. ``vault`` defaults to Redis when ``redis_url`` is set, else
    memory; the transports serve the calls to the identity service and to upstreams
    (tests). With ``revocation_feed``, ``revocations`` defaults to a ``VerifierService``
    following the identity service's feed (``TESSERA_VERIFIER_*`` tune it)."""
    clock = clock or SystemClock()
    if vault is None:
        vault = RedisVault(settings.redis_url, prefix=settings.redis_prefix) \
            if settings.redis_url else MemoryVault(clock)
    secret = settings.secret_key_bytes
    sealed = SealedVault(vault, Sealer(derive_key(secret, "seal")))
    client = IdentityClient(settings, clock=clock, transport=identity_transport)
    if revocations is None and settings.revocation_feed:
        assert settings.audience is not None  # BffSettings checks it
        revocations = VerifierService(VerifierSettings(
            issuer=settings.issuer, identity_url=settings.identity_url,
            audience=settings.audience, service_name="tessera-bff",
            client_id=settings.client_id, client_secret=settings.client_secret),
            clock=clock, transport=identity_transport)
    sessions = SessionManager(settings, sealed, client, clock, revocations=revocations)
    cookies = CookieJar(derive_key(secret, "cookie"), clock=clock,
                        session_max_age=settings.session_absolute_timeout,
                        login_max_age=settings.login_timeout)
    proxy = UpstreamProxy(settings, clock=clock, transport=upstream_transport)
    return build_app(settings, sessions, proxy, cookies)
