"""Bad input never gets a 5xx from the decision endpoint (nginx would turn it into a 500):
malformed Authorization headers, oversized tokens, garbage URIs, hosts and methods,
unknown routes, missing headers, raw bytes no HTTP client would send."""

from __future__ import annotations

import random
from typing import Any

import pytest
from starlette.applications import Starlette

from ._support import Gateway, gateway, mint

TOKEN = mint()
HUGE = "a" * 100_000

AUTHORIZATIONS = [
    "", "Bearer", "Bearer ", "Bearer  ", "bearer", "Basic dXNlcjpwYXNz", "Digest x",
    f"Bearer {TOKEN} extra", f"Bearer {TOKEN},{TOKEN}", f"Bearer \"{TOKEN}\"",
    f"Bearer {HUGE}", f"Bearer {TOKEN}{HUGE}", HUGE,
    "Bearer a.b.c", "Bearer ....", "Bearer e30.e30.e30", "Bearer eyJhbGciOiJub25lIn0.e30.",
    "Bearer " + TOKEN.replace(".", "", 1),
]

URIS = [
    "", " ", "orders", "*", "http://", "//", "/%", "/%zz", "/%2F..%2Fadmin", "/..",
    "/../../etc/passwd", "/a%00b", "/a\\b", "/a b", "/" + "a" * 100_000,
    "/%C0%AE%C0%AE/admin", "javascript:alert(1)", "/orders/%ff", "?x=1", "#frag",
]


def assert_clean_refusal(status: int, body: bytes | None = None) -> None:
    assert status in (401, 403), status


@pytest.mark.parametrize("authorization", AUTHORIZATIONS)
@pytest.mark.parametrize("style", ["nginx", "traefik", "envoy"])
async def test_malformed_authorization_headers(style: str, authorization: str) -> None:
    async with gateway() as gw:
        call = getattr(gw, style)
        response = await call("/orders/1", authorization=authorization)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_token"
        assert "x-tessera-subject" not in response.headers


@pytest.mark.parametrize("uri", URIS)
async def test_garbage_uris(uri: str) -> None:
    async with gateway() as gw:
        for response in (await gw.nginx(uri, token=TOKEN), await gw.traefik(uri, token=TOKEN)):
            assert response.status_code in (400, 401, 403), (uri, response.text)
            assert response.json()["error"] in ("invalid_request", "access_denied")


@pytest.mark.parametrize("path", ["/%", "/%2F", "/..%2f", "/%2e%2e/x", "/a%00", "/%ff",
                                  "/" + "x" * 10_000, "/nowhere"])
async def test_garbage_envoy_paths(path: str) -> None:
    async with gateway() as gw:
        response = await gw.envoy(path, token=TOKEN)
        assert response.status_code in (400, 403), response.text


@pytest.mark.parametrize("headers", [
    {"host": "bad host name"},
    {"host": "api.example:99999999"},
    {"x_forwarded_host": "a/b"},
    {"x_original_method": "G E T"},
    {"x_original_method": "X" * 100},
    {"x_forwarded_method": "POST"},  # disagrees with X-Original-Method
    {"x_forwarded_uri": "/admin"},   # disagrees with X-Original-URI
])
async def test_unusable_request_descriptions_are_400_invalid_request(
        headers: dict[str, str]) -> None:
    async with gateway() as gw:
        response = await gw.nginx("/orders/1", token=TOKEN, **headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_request"')


async def test_no_original_uri_at_all() -> None:
    async with gateway() as gw:
        response = await gw.http.get("/forward-auth",
                                     headers={"authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 400
        assert response.json() == {
            "error": "invalid_request",
            "error_description": "X-Original-URI (nginx) or X-Forwarded-Uri (Traefik) is "
                                 "required."}


async def call_raw(app: Starlette, path: bytes, headers: list[tuple[bytes, bytes]],
                   method: str = "GET") -> tuple[int, dict[bytes, bytes]]:
    """Call the app the way a server would, with header bytes no client library sends."""
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path.decode("latin-1"),
             "raw_path": path, "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("gw", 80)}
    await app(scope, receive, send)
    start = messages[0]
    return start["status"], dict(start["headers"])


JUNK = [b"\x00", b"\xff\xfe\xfd", b"\r\nX-Injected: 1", b"\xc3\x28", b"%", b"\x7f" * 50,
        b"Bearer \xff\xff", b" " * 10_000]


@pytest.mark.parametrize("junk", JUNK)
async def test_raw_junk_in_every_header(junk: bytes) -> None:
    async with gateway() as gw:
        for name in (b"authorization", b"x-original-uri", b"x-original-method", b"host",
                     b"x-forwarded-host", b"x-forwarded-uri", b"x-request-id",
                     b"traceparent"):
            headers = {b"x-original-uri": b"/orders/1", b"host": b"api.example",
                       b"authorization": f"Bearer {TOKEN}".encode()}
            headers[name] = junk
            status, sent = await call_raw(gw.app, b"/forward-auth", list(headers.items()))
            assert status in (200, 400, 401, 403), (name, junk, status)
            assert b"\n" not in sent[b"x-request-id"] and len(sent[b"x-request-id"]) <= 128
            status, _ = await call_raw(gw.app, b"/ext-authz/" + junk, list(headers.items()))
            assert status in (200, 400, 401, 403), (name, junk, status)


async def test_random_header_soup_never_5xx() -> None:
    rng = random.Random(8693)
    names = [b"authorization", b"x-original-uri", b"x-original-method", b"host",
             b"x-forwarded-host", b"x-forwarded-uri", b"x-forwarded-method", b"x-request-id",
             b"traceparent"]
    alphabet = b"/%.:?#aZ09 -_\\\"\x00\xff\r\n=+,;*"
    async with gateway() as gw:
        for _ in range(300):
            headers = [(rng.choice(names),
                        bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40))))
                       for _ in range(rng.randint(0, 6))]
            path = rng.choice([b"/forward-auth", b"/ext-authz", b"/ext-authz/x%2",
                               b"/ext-authz/../a"])
            status, _ = await call_raw(gw.app, path, headers,
                                       method=rng.choice(["GET", "POST", "DELETE"]))
            assert status in (200, 400, 401, 403), (path, headers, status)


async def test_websocket_and_lifespan_scopes_are_not_answered(gw_app: Gateway) -> None:
    from tessera.gateway.forward_auth import ForwardAuthEndpoint

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {}

    await ForwardAuthEndpoint(gw_app.authorizer)({"type": "websocket"}, receive, send)
    assert sent == []


@pytest.fixture
async def gw_app() -> Any:
    async with gateway() as gw:
        yield gw


SMUGGLED = [
    "/public/..;/admin/users", "/public/..%3B/admin/users", "/public;x=1/../admin/users",
    "/public/%2e%2e/admin/users", "/public/.%2E/admin/users", "/public/../admin/users",
    "/public//../admin/users", "/public/%252e%252e/admin/users", "/public%2F..%2Fadmin",
    "/public/..\\admin", "/public/%EF%BC%8E%EF%BC%8E/admin", "/public#/../admin/users",
    "//public/x", "/public/x;jsessionid=1",
]
"""Paths a rule for ``/public/**`` would allow if the gateway resolved them one way while
a Tomcat, Spring or Starlette back end resolves them another (to ``/admin/users``)."""

SMUGGLING_POLICY: dict[str, Any] = {"routes": [
    {"match": {"path": "/public/**"}, "public": True},
    {"match": {"path": "/admin/**"}, "scopes": ["admin"]},
]}


@pytest.mark.parametrize("uri", SMUGGLED)
async def test_paths_a_back_end_could_resolve_otherwise_are_400(uri: str) -> None:
    async with gateway(SMUGGLING_POLICY) as gw:
        assert (await gw.nginx("/public/x")).status_code == 200  # the rule is public
        for response in (await gw.nginx(uri), await gw.traefik(uri),
                         await gw.nginx(uri, token=TOKEN)):
            assert response.status_code == 400, (uri, response.text)
            assert response.json()["error"] == "invalid_request"
            assert response.headers["www-authenticate"].startswith(
                'Bearer error="invalid_request"')
            assert "x-tessera-subject" not in response.headers
        status, _ = await call_raw(gw.app, b"/ext-authz" + uri.encode(),
                                   [(b"host", b"api.example")])
        assert status == 400, (uri, status)
