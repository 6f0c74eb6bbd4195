"""Conversion between Starlette and the neutral protocol values; nothing else."""

from __future__ import annotations

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from tessera.protocol.errors import InvalidRequest, OAuthError
from tessera.protocol.http import OAuthRequest, OAuthResponse, error_response
from tessera.tls_scope import client_certificate

__all__ = ["BodyTooLarge", "read_request", "send", "send_error"]


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


def _headers(request: Request) -> dict[str, str]:
    names = [k.lower() for k, _ in request.headers.raw]
    if any(names.count(name) > 1 for name in _SINGLE_HEADERS):
        raise InvalidRequest("a request header is repeated")
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers.raw}


def _query(request: Request) -> str:
    """The raw query string. Starlette decodes it as strict UTF-8 on first use of
    ``request.url``; a stray byte would surface as a server error, so refuse it here."""
    raw: bytes = request.scope.get("query_string", b"")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the query string is not UTF-8") from None


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


def send(response: OAuthResponse) -> Response:
    if response.body is not None:
        return Response(response.body, status_code=response.status, headers=response.headers,
                        media_type="text/html; charset=utf-8")
    return Response(orjson.dumps(response.json), status_code=response.status,
                    headers=response.headers, media_type="application/json")


def send_error(error: OAuthError) -> Response:
    return send(error_response(error))
