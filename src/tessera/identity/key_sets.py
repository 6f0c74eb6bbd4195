"""Fetching clients' JWK Sets (``jwks_uri``) for client assertions, with httpx.

``https`` only, except plain ``http`` to a loopback host while the issuer itself is an
http loopback URL (local development and tests). A fetched set is cached for ``ttl``;
a refetch for an unknown ``kid`` happens at most once per ``min_refresh`` seconds per
URI, so a stream of assertions with made-up ``kid`` values cannot turn Tessera into a
request amplifier. Redirects are not followed; bodies are bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from tessera.core.urls import check_jwks_uri
from tessera.protocol.client_assertion import KeySetUnavailable

__all__ = ["HttpKeySetSource"]

_MAX_BODY = 256 * 1024



class HttpKeySetSource:
    def __init__(self, *, issuer: str, transport: httpx.AsyncBaseTransport | None = None,
                 ttl: float = 300.0, min_refresh: float = 10.0, timeout: float = 5.0,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self._issuer = issuer
        self.transport = transport
        """The httpx transport (tests swap in a MockTransport)."""
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._timeout = timeout
        self._timer = timer
        self._cache: dict[str, tuple[float, Mapping[str, Any]]] = {}
        self._refreshed: dict[str, float] = {}

    async def get(self, uri: str, *, refresh: bool = False) -> Mapping[str, Any]:
        now = self._timer()
        hit = self._cache.get(uri)
        if hit is not None:
            if not refresh and now - hit[0] < self._ttl:
                return hit[1]
            if refresh and now - self._refreshed.get(uri, -self._min_refresh) \
                    < self._min_refresh:
                return hit[1]  # refetched for an unknown kid moments ago: not again
        document = await self._fetch(uri)
        if len(self._cache) > 1000:
            self._cache.clear()
            self._refreshed.clear()
        self._cache[uri] = (now, document)
        if refresh:
            self._refreshed[uri] = now
        return document

    async def _fetch(self, uri: str) -> Mapping[str, Any]:
        problem = check_jwks_uri(uri, issuer=self._issuer)
        if problem is not None:
            raise KeySetUnavailable(problem)
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=self._timeout,
                                         follow_redirects=False) as client:
                response = await client.get(uri, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise KeySetUnavailable(type(exc).__name__) from None
        if response.status_code != 200:
            raise KeySetUnavailable(f"HTTP {response.status_code}")
        if len(response.content) > _MAX_BODY:
            raise KeySetUnavailable("JWK Set too large")
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise KeySetUnavailable("not JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise KeySetUnavailable("not a JWK Set")
        return document
