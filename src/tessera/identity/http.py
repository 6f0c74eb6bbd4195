"""Conversion between Starlette and the neutral protocol values; nothing else."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from tessera.protocol.errors import InvalidRequest, OAuthError
from tessera.protocol.http import OAuthRequest, OAuthResponse, error_response

__all__ = ["BodyTooLarge", "read_request", "send", "send_error"]


class BodyTooLarge(InvalidRequest):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge("request body too large")
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


async def read_request(request: Request, *, max_body: int) -> OAuthRequest:
    body = await _read_body(request, max_body) if request.method == "POST" else b""
    return OAuthRequest(
        method=request.method,
        url=str(request.url),
        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.raw},
        body=body,
        query=request.url.query,
        client_host=request.client.host if request.client else None,
        cookies=request.cookies,
    )


def send(response: OAuthResponse) -> Response:
    if response.body is not None:
        return Response(response.body, status_code=response.status, headers=response.headers,
                        media_type="text/html; charset=utf-8")
    return JSONResponse(response.json, status_code=response.status, headers=response.headers)


def send_error(error: OAuthError) -> Response:
    return send(error_response(error))
