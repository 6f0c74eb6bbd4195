"""The plain-ASGI binding of the protocol endpoints (``read_asgi``/``send_asgi``, used by
``ProtocolRoutes`` on the hot path) must read and answer exactly as the Starlette binding
(``read_request``/``send``) does: same request values, same refusals, same messages.
Header names are lower-case, as ASGI servers hand them over."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.requests import Request

from tessera.identity.http import BodyTooLarge, read_asgi, read_request, send, send_asgi
from tessera.protocol.errors import InvalidRequest
from tessera.protocol.http import OAuthResponse

LIMIT = 64


def _scope(headers: list[tuple[bytes, bytes]], *, method: str = "POST", query: bytes = b"",
           server: tuple[str, int] | None = ("tessera.test", 8443), scheme: str = "https",
           root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": scheme, "path": "/token", "raw_path": b"/token",
            "query_string": query, "root_path": root_path, "headers": headers,
            "client": ("192.0.2.7", 5555), "server": server}


def _receiver(chunks: list[bytes], *, disconnect: bool = False) -> Any:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or disconnect}
        for i, c in enumerate(chunks)]
    if disconnect:
        messages.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


CASES = [
    pytest.param([(b"host", b"id.example"), (b"content-type", b"application/x-www-form-urlencoded"),
                  (b"authorization", b"Basic eDp5")], [b"grant_type=client_credentials"], {},
                 id="plain"),
    pytest.param([(b"host", b"id.example:8443"), (b"cookie", b"a=1; b=two")],
                 [b"grant_", b"type=x", b""], {"query": b"x=%C3%A9"}, id="chunks-cookies-query"),
    pytest.param([], [b"a=b"], {"server": ("tessera.test", 443)}, id="no-host-default-port"),
    pytest.param([], [b"a=b"], {"server": None}, id="no-host-no-server"),
    pytest.param([(b"host", b"h")], [b"a=b"], {"root_path": "/id"}, id="root-path"),
    pytest.param([(b"host", b"h")], [b""], {"method": "GET"}, id="get-no-body"),
    pytest.param([(b"x-forwarded", b"1"), (b"x-forwarded", b"2")], [b""], {},
                 id="repeated-harmless-header-last-wins"),
]


@pytest.mark.parametrize(("headers", "chunks", "kw"), CASES)
async def test_read_asgi_reads_what_read_request_reads(headers: list[tuple[bytes, bytes]],
                                                       chunks: list[bytes],
                                                       kw: dict[str, Any]) -> None:
    scope = _scope(headers, **kw)
    ours = await read_asgi(dict(scope), _receiver(chunks), max_body=LIMIT)
    theirs = await read_request(Request(dict(scope), _receiver(chunks)), max_body=LIMIT)
    assert ours == theirs


REFUSED = [
    pytest.param([(b"authorization", b"a"), (b"Authorization", b"b")], [b""], {},
                 InvalidRequest, id="repeated-authorization"),
    pytest.param([(b"content-type", b"a"), (b"content-type", b"a")], [b""], {},
                 InvalidRequest, id="repeated-content-type"),
    pytest.param([(b"content-length", b"65")], [b"a"], {}, BodyTooLarge, id="declared-large"),
    pytest.param([(b"content-length", "\u00b2".encode("latin-1"))], [b"a"], {}, BodyTooLarge,
                 id="declared-not-ascii-digits"),
    pytest.param([], [b"a" * 40, b"b" * 40], {}, BodyTooLarge, id="chunks-over-the-limit"),
    pytest.param([], [b"abc"], {"query": b"\xff"}, InvalidRequest, id="query-not-utf8"),
]


@pytest.mark.parametrize(("headers", "chunks", "kw", "error"), REFUSED)
async def test_read_asgi_refuses_what_read_request_refuses(
        headers: list[tuple[bytes, bytes]], chunks: list[bytes], kw: dict[str, Any],
        error: type[Exception]) -> None:
    scope = _scope(headers, **kw)
    with pytest.raises(error):
        await read_asgi(dict(scope), _receiver(chunks), max_body=LIMIT)
    with pytest.raises(error):
        await read_request(Request(dict(scope), _receiver(chunks)), max_body=LIMIT)


async def test_a_client_that_disconnects_mid_body_is_an_invalid_request() -> None:
    scope = _scope([])
    with pytest.raises(InvalidRequest, match="disconnected"):
        await read_asgi(scope, _receiver([b"a=b"], disconnect=True), max_body=LIMIT)
    with pytest.raises(InvalidRequest, match="disconnected"):
        await read_request(Request(dict(scope), _receiver([b"a=b"], disconnect=True)),
                           max_body=LIMIT)


@pytest.mark.parametrize("response", [
    OAuthResponse(200, {"cache-control": "no-store", "Pragma": "no-cache"},
                  json={"access_token": "t", "expires_in": 300}),
    OAuthResponse(401, {"www-authenticate": 'Basic realm="x"'}, json={"error": "x"}),
    OAuthResponse(200, {"content-type": "application/token-introspection+jwt"}, body=b"a.b.c"),
    OAuthResponse(200, {}, body=b"<p>page</p>"),
    OAuthResponse(200, {}, json={}),
])
async def test_send_asgi_sends_what_the_starlette_response_sends(
        response: OAuthResponse) -> None:
    ours: list[MutableMapping[str, Any]] = []
    theirs: list[MutableMapping[str, Any]] = []

    async def collect_ours(message: MutableMapping[str, Any]) -> None:
        ours.append(message)

    async def collect_theirs(message: MutableMapping[str, Any]) -> None:
        theirs.append(message)

    await send_asgi(collect_ours, response)
    await send(response)(_scope([]), _receiver([b""]), collect_theirs)
    assert ours[0]["status"] == theirs[0]["status"]
    assert sorted(ours[0]["headers"]) == sorted(theirs[0]["headers"])
    assert b"".join(m.get("body", b"") for m in ours[1:]) == \
        b"".join(m.get("body", b"") for m in theirs[1:])


def test_the_url_is_remembered_per_what_it_is_built_from_and_the_memo_is_bounded() -> None:
    from starlette.datastructures import URL

    from tessera.identity import http

    variants = [_scope([(b"host", b"a.example")]), _scope([(b"host", b"b.example")]),
                _scope([(b"host", b"a.example")], scheme="http"),
                _scope([(b"host", b"a.example")], query=b"x=1"),
                _scope([], server=("10.0.0.1", 8080)), _scope([], server=None),
                _scope([(b"host", b"a.example")], root_path="/id")]
    for _ in range(2):  # the second round from the memo
        for scope in variants:
            host = dict(scope["headers"]).get(b"host")
            assert http._url(scope, None if host is None else host.decode()) == str(
                URL(scope=scope))
    for i in range(http._URLS_KEPT + 10):
        http._url(_scope([(b"host", f"h{i}.example".encode())]), f"h{i}.example")
    assert len(http._URLS) <= http._URLS_KEPT
