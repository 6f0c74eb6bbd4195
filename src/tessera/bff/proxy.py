"""Upstream calls: ``/bff/api/<route>/<path>`` → ``{routes[route]}/<path>`` with the
session's access token.

- ``Authorization: Bearer <token>``, or ``Authorization: DPoP <token>`` plus a ``DPoP``
  proof for this method and URL with ``ath`` (RFC 9449 §7) when the session's tokens are
  DPoP-bound; an upstream that asks for a nonce (``401`` + ``DPoP-Nonce``, §9) gets one
  retry with it, and its nonce is remembered for later proofs.
- Only an allowlist of request headers goes upstream (never the browser's cookies, its
  ``Authorization``, ``Origin`` or the CSRF header); hop-by-hop headers, ``Set-Cookie``
  and CORS headers (``Access-Control-*``: an upstream must not open the BFF's origin to
  other sites) never come back.
- The path must not climb out of the route (``.`` / ``..`` segments are 400).
"""

from __future__ import annotations

import logging
from typing import Final

import httpx
from starlette.responses import Response

from tessera.bff.settings import BffSettings
from tessera.core.clock import Clock
from tessera.protocol.rfc9449 import ProofSigner

__all__ = ["ProxyError", "UpstreamProxy"]

_log = logging.getLogger("tessera.bff")

_FORWARD_REQUEST: Final = frozenset({
    "accept", "accept-language", "content-type", "content-language", "if-match",
    "if-none-match", "if-modified-since", "if-unmodified-since", "range", "traceparent",
    "tracestate", "x-request-id", "x-correlation-id"})
_DROP_RESPONSE: Final = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "set-cookie", "content-length",
    "content-encoding", "dpop-nonce"})


class ProxyError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class UpstreamProxy:
    def __init__(self, settings: BffSettings, *, clock: Clock,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._routes = settings.routes
        self._clock = clock
        self._http = httpx.AsyncClient(transport=transport, timeout=settings.upstream_timeout,
                                       follow_redirects=False)
        self._nonces: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    def target(self, route: str, path: str, query: str) -> str:
        base = self._routes.get(route)
        if base is None:
            raise ProxyError(404, "unknown_route", f"no upstream named {route!r}")
        segments = path.split("/")
        if any(s in (".", "..") for s in segments) or any(ord(c) < 0x20 for c in path):
            raise ProxyError(400, "invalid_request", "the path must stay inside the route")
        return f"{base}/{path}" + (f"?{query}" if query else "")

    async def forward(self, *, route: str, url: str, method: str,
                      headers: dict[str, str], body: bytes, access_token: str,
                      token_type: str, signer: ProofSigner | None) -> Response:
        outgoing = {k: v for k, v in headers.items() if k in _FORWARD_REQUEST}
        nonce = self._nonces.get(route)
        for attempt in range(2):
            if signer is not None and token_type == "DPoP":
                outgoing["authorization"] = f"DPoP {access_token}"
                outgoing["dpop"] = signer.proof(method, url, now=self._clock.now(),
                                                access_token=access_token, nonce=nonce)
            else:
                outgoing["authorization"] = f"Bearer {access_token}"
            try:
                response = await self._http.request(method, url, headers=outgoing,
                                                    content=body)
            except httpx.TimeoutException:
                raise ProxyError(504, "upstream_timeout",
                                 f"upstream {route!r} did not answer in time") from None
            except httpx.HTTPError as exc:
                _log.warning("bff upstream %s: %s", route, type(exc).__name__)
                raise ProxyError(502, "upstream_unavailable",
                                 f"upstream {route!r} cannot be reached") from None
            fresh = response.headers.get("dpop-nonce")
            if fresh:
                self._nonces[route] = fresh
            if attempt == 0 and signer is not None and response.status_code == 401 \
                    and fresh and "use_dpop_nonce" in response.headers.get(
                        "www-authenticate", ""):
                nonce = fresh
                continue
            break
        kept = [(k, v) for k, v in response.headers.multi_items()
                if k.lower() not in _DROP_RESPONSE
                and not k.lower().startswith("access-control-")]  # no CORS through us
        out = Response(response.content, status_code=response.status_code)
        for name, value in kept:
            out.headers.append(name, value)
        out.headers["cache-control"] = response.headers.get("cache-control", "no-store")
        return out
