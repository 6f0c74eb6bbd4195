"""RFC 8693 token exchange for upstreams, with a bounded cache.

RFC 8693: https://www.rfc-editor.org/rfc/rfc8693

``POST {identity}/token`` (§2.1) with ``grant_type=urn:ietf:params:oauth:grant-type:
token-exchange``, the verified ``subject_token`` (``subject_token_type`` access token),
``audience`` (the route's ``exchange_to``) and, if the route says so, ``scope``; the
gateway authenticates with its client (``client_secret_basic``), which needs the
token-exchange grant and the target audience.

Cache: key = (SHA-256 of the subject token, audience, scope) — never the token itself;
an entry is used until ``refresh_margin`` seconds (at most half its life) before the
exchanged token expires, then exchanged anew; at most ``max_entries`` (least recently
used go first). Concurrent requests for one key share one call. The subject token is
verified (and its revocation checked) on every request before the cache is consulted,
so a revoked session never gets a cached token; the upstream verifies the exchanged
token (same ``sid``) itself.

Errors::

    ExchangeError
     ├── ExchangeRefused      the identity service said no (``error`` is its OAuth code)
     └── ExchangeUnavailable  it could not be asked, or answered nonsense
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

import httpx

from tessera.core.clients import GRANT_TOKEN_EXCHANGE
from tessera.core.clock import Clock
from tessera.core.json_body import json_object
from tessera.core.secrets import token_hash
from tessera.observability.tracing import inject_trace_context

__all__ = ["TOKEN_TYPE_ACCESS_TOKEN", "ExchangeCache", "ExchangeError", "ExchangeRefused",
           "ExchangeUnavailable", "ExchangedToken", "TokenExchanger"]

TOKEN_TYPE_ACCESS_TOKEN: Final = "urn:ietf:params:oauth:token-type:access_token"
"""RFC 8693 §3."""

_log = logging.getLogger("tessera.gateway")
_MAX_BODY: Final = 64 * 1024
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_OAUTH_ERROR: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")

CacheKey = tuple[str, str, str | None]


class ExchangeError(Exception):
    """Base of the exchange client's errors."""


class ExchangeRefused(ExchangeError):
    def __init__(self, error: str, status: int) -> None:
        super().__init__(f"token exchange refused: {error} (HTTP {status})")
        self.error = error
        self.status = status


class ExchangeUnavailable(ExchangeError):
    pass


@dataclass(frozen=True, slots=True)
class ExchangedToken:
    access_token: str
    expires_at: float
    usable_until: float
    """When the cache stops handing it out (shortly before ``expires_at``)."""


class ExchangeCache:
    """Bounded LRU of exchanged tokens; entries past ``usable_until`` are dropped on read."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, ExchangedToken] = OrderedDict()

    def get(self, key: CacheKey, now: float) -> ExchangedToken | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.usable_until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: CacheKey, token: ExchangedToken) -> None:
        self._entries[key] = token
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class TokenExchanger:
    """The gateway's RFC 8693 client. One per process; ``aclose`` when done."""

    def __init__(self, token_endpoint: str, *, client_id: str, client_secret: str,
                 clock: Clock, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 2.0, max_entries: int = 10_000,
                 refresh_margin: float = 15.0) -> None:
        self.token_endpoint = token_endpoint
        self.cache = ExchangeCache(max_entries)
        self._clock = clock
        self._margin = refresh_margin
        self._client = httpx.AsyncClient(transport=transport, auth=(client_id, client_secret),
                                         timeout=timeout)
        self._inflight: dict[CacheKey, asyncio.Future[ExchangedToken]] = {}
        self.hits = 0
        self.misses = 0
        self.failures = 0

    async def exchange(self, subject_token: str, audience: str,
                       scope: str | None = None) -> str:
        """An access token for ``audience`` standing for ``subject_token`` (cached)."""
        key: CacheKey = (token_hash(subject_token), audience, scope)
        cached = self.cache.get(key, self._clock.now())
        if cached is not None:
            self.hits += 1
            return cached.access_token
        pending = self._inflight.get(key)
        if pending is not None:
            self.hits += 1
            return (await asyncio.shield(pending)).access_token
        self.misses += 1
        future: asyncio.Future[ExchangedToken] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            token = await self._request(subject_token, audience, scope)
        except ExchangeError as exc:
            self.failures += 1
            _settle(future, exc)
            raise
        except BaseException as exc:  # a bug or a cancelled request: waiters still get out
            _settle(future, ExchangeUnavailable(f"exchange interrupted: {type(exc).__name__}"))
            raise
        finally:
            del self._inflight[key]
        future.set_result(token)
        if token.usable_until > self._clock.now():
            self.cache.put(key, token)
        return token.access_token

    async def _request(self, subject_token: str, audience: str,
                       scope: str | None) -> ExchangedToken:
        form = {"grant_type": GRANT_TOKEN_EXCHANGE, "subject_token": subject_token,
                "subject_token_type": TOKEN_TYPE_ACCESS_TOKEN, "audience": audience}
        if scope:
            form["scope"] = scope
        started = self._clock.now()
        try:
            response = await self._client.post(  # the trace goes on (W3C traceparent)
                self.token_endpoint, data=form,
                headers=inject_trace_context({"accept": "application/json"}))
        except httpx.HTTPError as exc:
            raise ExchangeUnavailable(f"token endpoint: {type(exc).__name__}") from None
        body = _json_object(response)
        if response.status_code != 200:
            error = body.get("error") if body is not None else None
            if response.status_code in (400, 401, 403) and isinstance(error, str) \
                    and _OAUTH_ERROR.fullmatch(error):
                raise ExchangeRefused(error, response.status_code)
            raise ExchangeUnavailable(f"token endpoint: HTTP {response.status_code}")
        if body is None:
            raise ExchangeUnavailable("token endpoint: the answer is not a JSON object")
        return self._token_from(body, started)

    def _token_from(self, body: dict[str, object], started: float) -> ExchangedToken:
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not _B64TOKEN.fullmatch(token) or len(token) > 8192:
            raise ExchangeUnavailable("token endpoint: no usable access_token")
        token_type = body.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise ExchangeUnavailable(f"token endpoint: token_type {token_type!r}")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) \
                or expires_in <= 0:
            # Without a lifetime the token cannot be cached safely: use it once.
            return ExchangedToken(token, started, started)
        expires_at = started + float(expires_in)
        margin = min(self._margin, float(expires_in) / 2)
        return ExchangedToken(token, expires_at, expires_at - margin)

    async def aclose(self) -> None:
        await self._client.aclose()


def _settle(future: asyncio.Future[ExchangedToken], error: ExchangeError) -> None:
    future.set_exception(error)
    future.exception()  # mark it retrieved: no warning when nobody was waiting


def _json_object(response: httpx.Response) -> dict[str, object] | None:
    return json_object(response.content, max_bytes=_MAX_BODY)
