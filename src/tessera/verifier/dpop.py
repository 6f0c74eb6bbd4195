"""DPoP at the resource server (RFC 9449 §7): how a token was presented, and whether that
fits its ``cnf.jkt`` binding. The proof checks themselves are ``tessera.protocol.rfc9449``
(framework- and storage-free), shared with the identity service and the gateway.

    credentials(Authorization)          → ("bearer" | "dpop", token)
    Presentation (scheme, DPoP headers, method, URL of the request)
    DPoPBinding.check(verified, token, presentation):
      Bearer  + cnf.jkt          → dpop_binding      401 invalid_token, DPoP challenge
      DPoP    + no cnf.jkt       → dpop_binding
      DPoP    + cnf.jkt          → proof: one DPoP header, typ, alg allowlist, public jwk,
                                   signature, htm, htu, iat window, ath, nonce, replay;
                                   then jkt == cnf.jkt
                                   → invalid_dpop_proof | dpop_replayed | use_dpop_nonce
                                     (+ DPoP-Nonce) | dpop_binding

The URL a proof's ``htu`` must name is the request's as this service sees it (scheme,
``Host``, path), or ``settings.dpop_public_url`` plus the path when a proxy stands in
front and rewrites the scheme or host.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from tessera.core.clock import Clock
from tessera.protocol.rfc9449 import (
    BEARER,
    DPOP,
    BindingMismatch,
    InvalidProof,
    MemoryReplayCache,
    NonceIssuer,
    ProofChecker,
    ProofReplayed,
    ReplayCache,
    ReplayCacheUnavailable,
    UseNonce,
)
from tessera.tls_scope import client_certificate
from tessera.verifier._bearer import bearer_token
from tessera.verifier._token import VerifiedToken
from tessera.verifier.errors import Denied, Reason, Unavailable
from tessera.verifier.settings import VerifierSettings

__all__ = [
    "BEARER",
    "BEARER_PRESENTATION",
    "DPOP",
    "DPOP_CHECKED_KEY",
    "DPOP_REASONS",
    "REPLAY_UNAVAILABLE",
    "DPoPBinding",
    "NonceRequired",
    "Presentation",
    "credentials",
    "mark_checked",
    "presentation_from_scope",
    "request_url",
]

REPLAY_UNAVAILABLE: Final = "dpop_replay_unavailable"
_HTTP_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
"""A WebSocket handshake is an HTTP GET: its proof names the http(s) URI."""
DPOP_REASONS: Final = frozenset({Reason.INVALID_DPOP_PROOF, Reason.DPOP_REPLAYED,
                                 Reason.USE_DPOP_NONCE, Reason.DPOP_BINDING})
"""Refusals answered with a ``DPoP`` challenge whatever scheme the request used."""
DPOP_CHECKED_KEY: Final = "tessera_dpop_checked"
"""``scope["state"]`` key: the token whose DPoP proof this request already passed (the
middleware, then a FastAPI dependency, verify once: a second look at the same proof
would be a replay)."""


@dataclass(frozen=True, slots=True)
class Presentation:
    """How a token arrived: the ``Authorization`` scheme (``bearer``/``dpop``), every
    ``DPoP`` header value, and the request's method and URL (``htm``/``htu``)."""

    scheme: str = BEARER
    proofs: tuple[str, ...] = ()
    method: str = "GET"
    url: str = ""
    checked: bool = False
    """The proof already passed for this token earlier in the same request."""
    client_cert: str | None = None
    """The request's client certificate (PEM, RFC 8705 §3), whatever the scheme."""


BEARER_PRESENTATION: Final = Presentation()
"""A token with no HTTP request around it (the plain API's default): a Bearer token."""


class NonceRequired(Denied):
    """RFC 9449 §9: the proof lacks a current nonce of this service; ``nonce`` goes out
    in the ``DPoP-Nonce`` header."""

    def __init__(self, nonce: str, detail: str = "") -> None:
        super().__init__(Reason.USE_DPOP_NONCE, detail)
        self.nonce = nonce


def credentials(authorization: str | None) -> tuple[str, str]:
    """The scheme (``bearer`` or ``dpop``) and token of an ``Authorization`` value. A DPoP
    token has the syntax and length bound of a bearer token (RFC 9449 §7.1); raises what
    ``bearer_token`` raises (``MissingToken``, ``Denied(malformed)``)."""
    if authorization is not None:
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme.lower() == DPOP:
            return DPOP, bearer_token("Bearer " + rest)
    return BEARER, bearer_token(authorization)


def presentation_from_scope(scope: Any, scheme: str, token: str, *,
                            public_url: str | None = None) -> Presentation:
    """The presentation of ``token`` in an ASGI HTTP request: every ``DPoP`` header, its
    method, and the URL ``htu`` must match (query excluded: RFC 9449 §4.3)."""
    cert = client_certificate(scope)
    if scheme == BEARER:  # no proof is looked at for a Bearer token
        return BEARER_PRESENTATION if cert is None else Presentation(client_cert=cert)
    if scope.get("state", {}).get(DPOP_CHECKED_KEY) == token:
        return Presentation(DPOP, checked=True, client_cert=cert)
    proofs = tuple(value.decode("latin-1") for name, value in scope["headers"]
                   if name == b"dpop")
    return Presentation(DPOP, proofs, scope.get("method", "GET"),
                        request_url(scope, public_url=public_url), client_cert=cert)


def mark_checked(scope: Any, token: str, presentation: Presentation) -> None:
    """Remember that ``token``'s proof passed in this request (see ``DPOP_CHECKED_KEY``)."""
    if presentation.scheme == DPOP:
        scope.setdefault("state", {})[DPOP_CHECKED_KEY] = token


def request_url(scope: Any, *, public_url: str | None = None) -> str:
    """``scheme://host[:port]/path`` of an ASGI request: ``public_url`` + path when set,
    else the scheme and ``Host`` (or server address) the request arrived with."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else quote(
        scope.get("root_path", "") + scope.get("path", "/"))
    path = path.partition("?")[0]
    if public_url:
        return public_url.rstrip("/") + path
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    scheme = _HTTP_SCHEMES.get(scope.get("scheme", "http"), "http")
    return f"{scheme}://{host}{path}"


class DPoPBinding:
    """The SDK's DPoP rule for one service: a ``ProofChecker`` and the mapping of its
    refusals onto ``Denied`` reasons."""

    def __init__(self, checker: ProofChecker) -> None:
        self.checker = checker

    @classmethod
    def from_settings(cls, settings: VerifierSettings, clock: Clock, *,
                      replay: ReplayCache | None = None) -> DPoPBinding:
        if replay is None:
            replay = _replay_cache(settings)
        secret = settings.dpop_nonce_secret
        key = _nonce_key(secret.get_secret_value()) if secret is not None else os.urandom(32)
        nonces = NonceIssuer(key, lifetime=settings.dpop_nonce_lifetime)
        return cls(ProofChecker(replay, clock, algorithms=settings.dpop_algorithms,
                                window=settings.dpop_proof_window, nonces=nonces,
                                require_nonce=settings.dpop_require_nonce))

    @property
    def algs(self) -> str:
        """The challenge's ``algs`` value (RFC 9449 §7.1)."""
        return self.checker.algs

    async def check(self, token: VerifiedToken, raw: str,
                    presentation: Presentation = BEARER_PRESENTATION) -> None:
        """Raise ``Denied`` unless ``presentation`` fits the token's binding."""
        if presentation.scheme == BEARER and token.cnf_jkt is None:
            return  # the common case, without a call
        if presentation.checked and token.cnf_jkt is not None:
            return  # the same token's proof passed earlier in this request
        try:
            await self.checker.check_presentation(
                scheme=presentation.scheme, token=raw, bound_jkt=token.cnf_jkt,
                proofs=presentation.proofs, method=presentation.method,
                url=presentation.url)
        except BindingMismatch as exc:
            raise Denied(Reason.DPOP_BINDING, exc.reason) from None
        except ProofReplayed as exc:
            raise Denied(Reason.DPOP_REPLAYED, exc.detail) from None
        except InvalidProof as exc:
            raise Denied(Reason.INVALID_DPOP_PROOF, str(exc)) from None
        except UseNonce as exc:
            raise NonceRequired(exc.nonce, exc.detail) from None
        except ReplayCacheUnavailable as exc:
            raise Unavailable(REPLAY_UNAVAILABLE, str(exc)) from None

    def challenge_algs(self, denied: Denied, scheme: str) -> str | None:
        """``algs`` when a refusal is answered with a DPoP challenge (the request used the
        DPoP scheme, or the refusal is about DPoP), else None (a Bearer challenge)."""
        if scheme == DPOP or denied.reason in DPOP_REASONS:
            return self.algs
        return None

    async def aclose(self) -> None:
        await self.checker.replay.aclose()


def _replay_cache(settings: VerifierSettings) -> ReplayCache:
    if settings.dpop_replay_cache == "redis":
        from tessera.verifier.replay import RedisReplayCache

        url = settings.dpop_redis_url or settings.redis_url
        assert url is not None  # the settings validator makes sure
        service = settings.service_name or settings.audience
        return RedisReplayCache.from_url(url, prefix=f"tessera:dpop:{service}:")
    return MemoryReplayCache(settings.dpop_replay_cache_size)


def _nonce_key(secret: str) -> bytes:
    """A base64url secret of at least 32 bytes, or the secret's own UTF-8 bytes."""
    try:
        key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    except ValueError:
        key = b""
    return key if len(key) >= 32 else secret.encode()

