"""HTTP adapters of the decision endpoint: nginx ``auth_request``, Traefik ``forwardAuth``
(``/forward-auth``, any method) and Envoy ``ext_authz`` HTTP service (``/ext-authz/<path>``).

Raw ASGI (the request body is never read). Each request::

    read headers → correlation id → describe the original request (``request``)
      → Authorizer (match, verify, decide, exchange, record) → answer

Allowed: ``200``, empty body, ``X-Tessera-Subject``, ``X-Tessera-Tenant``,
``X-Tessera-Scopes`` (space-separated, sorted), ``X-Tessera-Sid-Hash`` (SHA-256 base64url of
``sid``, the decision log's ``sid_hash``), ``X-Tessera-Client``, ``X-Request-Id`` and, on
``exchange_to`` routes, ``X-Tessera-Token`` (the exchanged token). The identity headers are
always sent — empty on public routes and for a token without that claim — so a proxy that
copies them overwrites whatever the client sent. Values outside printable ASCII are
percent-encoded (RFC 3986 §2.1).

Refused: ``400`` (a request the gateway cannot describe, or one a back end could read as
another path: ``tessera.gateway.request``), ``401``/``403`` with ``WWW-Authenticate`` (a
``DPoP`` challenge for a DPoP presentation, RFC 9449 §7.1, and ``DPoP-Nonce`` when a nonce
is due), ``X-Request-Id`` and a JSON body
``{"error", "error_description"}``. Never a 5xx: nginx would turn it into a 500.
Every answer is ``Cache-Control: no-store``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import quote

import orjson
from starlette.types import Receive, Scope, Send

from tessera.core.secrets import token_hash
from tessera.gateway.authorizer import Authorizer, Verdict
from tessera.gateway.correlation import correlation_id, mint_correlation_id
from tessera.gateway.decision import deny_internal_error
from tessera.gateway.request import (
    BadRequest,
    OriginalRequest,
    ext_authz_request,
    forward_auth_request,
)
from tessera.observability.tracing import server_span
from tessera.tls_scope import client_certificate

__all__ = ["EXT_AUTHZ_PREFIX", "FORWARD_AUTH_PATH", "ExtAuthzEndpoint", "ForwardAuthEndpoint",
           "answer", "read_headers"]

FORWARD_AUTH_PATH: Final = "/forward-auth"
EXT_AUTHZ_PREFIX: Final = "/ext-authz"

_log = logging.getLogger("tessera.gateway")
_WANTED: Final = frozenset({b"authorization", b"x-request-id", b"traceparent", b"host",
                            b"x-forwarded-host", b"x-original-uri", b"x-original-method",
                            b"x-forwarded-uri", b"x-forwarded-method", b"dpop",
                            b"x-forwarded-proto"})
_SAFE: Final = "".join(chr(c) for c in range(0x20, 0x7f) if chr(c) != "%")
_NO_STORE: Final = (b"cache-control", b"no-store")
_EMPTY: Final = (b"content-length", b"0")

Headers = dict[str, list[str]]
_Describe = Callable[[Scope, Headers], OriginalRequest]


def read_headers(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    """The headers the decision reads, lower-case name → values (others are skipped)."""
    found: Headers = {}
    for name, value in raw:
        name = name.lower()
        if name in _WANTED:
            found.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return found


class ForwardAuthEndpoint:
    """``/forward-auth``: nginx (``X-Original-*``) and Traefik (``X-Forwarded-*``)."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _serve(self.authorizer, scope, send, _describe_forward_auth)


class ExtAuthzEndpoint:
    """``/ext-authz/<original path>``: Envoy's HTTP ext_authz check request."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _serve(self.authorizer, scope, send, _describe_ext_authz)


def _describe_forward_auth(scope: Scope, headers: Headers) -> OriginalRequest:
    return forward_auth_request(headers, method=scope.get("method", "GET"))


def _describe_ext_authz(scope: Scope, headers: Headers) -> OriginalRequest:
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"]
    if not path.startswith(EXT_AUTHZ_PREFIX):
        raise BadRequest("The check request is not under /ext-authz.")
    rest = path[len(EXT_AUTHZ_PREFIX):]
    if rest and not rest.startswith("/"):
        raise BadRequest("The original URI must be a path starting with '/'.")
    return ext_authz_request(rest or "/", method=scope.get("method", "GET"), headers=headers)


async def _serve(authorizer: Authorizer, scope: Scope, send: Send, describe: _Describe) -> None:
    if scope["type"] != "http":
        return
    correlation: str | None = None
    try:
        headers = read_headers(scope["headers"])
        correlation = correlation_id(headers.get("x-request-id", ()),
                                     headers.get("traceparent", ()))
        request: OriginalRequest | BadRequest
        try:
            request = describe(scope, headers)
        except BadRequest as bad:
            request = bad
        with server_span("gateway.forward_auth", headers, correlation_id=correlation):
            verdict = await authorizer.authorize(request, headers.get("authorization", ()),
                                                 correlation, proofs=headers.get("dpop", ()),
                                                 client_cert=client_certificate(scope))
        status, response_headers, body = answer(verdict, correlation)
    except Exception:  # never a 5xx from the decision endpoint
        _log.exception("forward-auth adapter failed")
        status, response_headers, body = answer(Verdict(deny_internal_error()),
                                                correlation or mint_correlation_id())
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})


def answer(verdict: Verdict, correlation_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, raw headers and body of the answer to the proxy."""
    decision = verdict.decision
    request_id = (b"x-request-id", correlation_id.encode("ascii"))
    if decision.allowed:
        token = decision.token
        if token is None:
            identity: tuple[str, ...] = ("", "", "", "", "")
        else:
            identity = (token.sub, token.tid, " ".join(sorted(token.scopes)),
                        token_hash(token.sid) if token.sid is not None else "",
                        token.client_id)
        headers = [(name, _header_value(value)) for name, value in
                   zip(_IDENTITY_HEADERS, identity, strict=True)]
        headers += [request_id, _NO_STORE, _EMPTY]
        if verdict.exchanged_token is not None:
            headers.append((b"x-tessera-token", verdict.exchanged_token.encode("ascii")))
        return 200, headers, b""
    body = orjson.dumps({"error": decision.error, "error_description": decision.description})
    headers = [(b"content-type", b"application/json"), _NO_STORE, request_id,
               (b"content-length", str(len(body)).encode("ascii"))]
    if decision.challenge is not None:
        headers.append((b"www-authenticate", decision.challenge.encode("latin-1")))
    if decision.dpop_nonce is not None:
        headers.append((b"dpop-nonce", decision.dpop_nonce.encode("ascii")))
    return decision.status, headers, body


_IDENTITY_HEADERS: Final = (b"x-tessera-subject", b"x-tessera-tenant", b"x-tessera-scopes",
                            b"x-tessera-sid-hash", b"x-tessera-client")


def _header_value(value: str) -> bytes:
    if value.isascii() and value.isprintable():
        return value.encode("ascii")
    return quote(value, safe=_SAFE).encode("ascii")

