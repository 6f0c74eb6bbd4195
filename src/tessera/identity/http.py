"""Conversion between HTTP and the neutral protocol values; nothing else.

Two bindings of the same rules: Starlette's ``Request``/``Response`` (``read_request``,
``send``) for routes served by the router, and plain ASGI messages (``read_asgi``,
``send_asgi``) for the protocol endpoints on the hot path (``ProtocolRoutes``), which
skip Starlette's routing, request and response objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from starlette.datastructures import URL
from starlette.requests import ClientDisconnect, Request, cookie_parser
from starlette.responses import Response

from tessera.protocol.errors import InvalidRequest, OAuthError
from tessera.protocol.http import OAuthRequest, OAuthResponse, error_response
from tessera.tls_scope import client_certificate

__all__ = ["BodyTooLarge", "read_asgi", "read_request", "send", "send_asgi", "send_error"]


class BodyTooLarge(InvalidRequest):
    pass


_SINGLE_HEADERS = frozenset({b"authorization", b"content-type", b"content-length", b"dpop"})
"""Headers that must not be repeated: with two, a proxy and this service could each act
on a different one (which client authenticated, how the body is parsed, which DPoP proof
counts: RFC 9449 §4.3 allows exactly one)."""


def _declared_length(value: str | None, limit: int) -> None:
    """Refuse a body whose Content-Length is not plain ASCII digits or exceeds ``limit``
    (``str.isdigit`` also accepts "²" and "١", and ``int`` refuses 5,000-digit strings)."""
    if value is None:
        return
    if not (value.isascii() and value.isdigit()) or len(value.lstrip("0")) > 18 \
            or int(value) > limit:
        raise BodyTooLarge("request body too large")


async def _read_body(request: Request, limit: int) -> bytes:
    _declared_length(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge("request body too large")
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidRequest("client disconnected") from None
    return b"".join(chunks)


def _raw_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    repeated = False
    for k, v in raw:
        name = k.decode("latin-1").lower()
        if name in headers and name.encode("latin-1") in _SINGLE_HEADERS:
            repeated = True
        headers[name] = v.decode("latin-1")
    if repeated:
        raise InvalidRequest("a request header is repeated")
    return headers


def _headers(request: Request) -> dict[str, str]:
    return _raw_headers(request.headers.raw)


def _scope_query(scope: Any) -> str:
    """The raw query string. Starlette decodes it as strict UTF-8 on first use of
    ``request.url``; a stray byte would surface as a server error, so refuse it here."""
    raw: bytes = scope.get("query_string", b"")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the query string is not UTF-8") from None


def _query(request: Request) -> str:
    return _scope_query(request.scope)


async def read_request(request: Request, *, max_body: int) -> OAuthRequest:
    query = _query(request)
    headers = _headers(request)
    body = await _read_body(request, max_body) if request.method == "POST" else b""
    return OAuthRequest(
        method=request.method,
        url=str(request.url),
        headers=headers,
        body=body,
        query=query,
        client_host=request.client.host if request.client else None,
        cookies=request.cookies,
        client_cert=client_certificate(request.scope),
    )


async def _receive_body(receive: Callable[[], Awaitable[Any]], limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest("client disconnected")
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge("request body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_URLS: dict[tuple[Any, ...], str] = {}
_URLS_KEPT = 1024


def _url(scope: Any, host: str | None) -> str:
    """``str(URL(scope=scope))``, remembered per what it is built from: the
    protocol endpoints see the same few URLs, and building one is a tenth of an
    introspection's framework time. Bounded: emptied when full."""
    server = scope.get("server")
    key = (scope.get("scheme", "http"), host, None if server is None else tuple(server),
           scope.get("root_path", ""), scope["path"], scope.get("query_string", b""))
    url = _URLS.get(key)
    if url is None:
        if len(_URLS) >= _URLS_KEPT:
            _URLS.clear()
        url = _URLS[key] = str(URL(scope=scope))
    return url


async def read_asgi(scope: Any, receive: Callable[[], Awaitable[Any]], *,
                    max_body: int) -> OAuthRequest:
    """``read_request`` for a plain ASGI request: the same checks, the same result."""
    query = _scope_query(scope)
    headers = _raw_headers(scope.get("headers", ()))
    method = str(scope["method"])
    if method == "POST":
        _declared_length(headers.get("content-length"), max_body)
        body = await _receive_body(receive, max_body)
    else:
        body = b""
    cookie = headers.get("cookie")
    client = scope.get("client")
    return OAuthRequest(
        method=method,
        url=_url(scope, headers.get("host")),
        headers=headers,
        body=body,
        query=query,
        client_host=client[0] if client else None,
        cookies=cookie_parser(cookie) if cookie else {},
        client_cert=client_certificate(scope),
    )


async def send_asgi(send_: Callable[[Any], Awaitable[None]], response: OAuthResponse) -> None:
    """``send`` as two ASGI messages (what ``Response`` would send for it)."""
    if response.body is not None:
        body, media_type = response.body, "text/html; charset=utf-8"
    else:
        body, media_type = orjson.dumps(response.json), "application/json"
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1"))
           for k, v in response.headers.items()]
    names = {k for k, _ in raw}
    if b"content-length" not in names:
        raw.append((b"content-length", str(len(body)).encode("latin-1")))
    if b"content-type" not in names:
        raw.append((b"content-type", media_type.encode("latin-1")))
    await send_({"type": "http.response.start", "status": response.status, "headers": raw})
    await send_({"type": "http.response.body", "body": body})


def send(response: OAuthResponse) -> Response:
    if response.body is not None:
        return Response(response.body, status_code=response.status, headers=response.headers,
                        media_type="text/html; charset=utf-8")
    return Response(orjson.dumps(response.json), status_code=response.status,
                    headers=response.headers, media_type="application/json")


def send_error(error: OAuthError) -> Response:
    return send(error_response(error))
