"""Hostile and broken requests against the real ASGI app: every refusal is a clean 4xx
(RFC 6749 §5.2 JSON with ``Cache-Control: no-store`` on the API, an HTML page on the
browser endpoints), never a 5xx, and the service keeps serving afterwards (DESIGN §9).

Forged JWTs live in ``tests/vectors/test_jwt_attacks.py``; this file is about bodies,
parameters, headers, client authentication, routes and URLs."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.protocol.http import FORM_CONTENT_TYPE
from tests.support import REDIRECT, AppClient, TesseraDriver
from tests.vectors.responses import assert_no_leak, assert_oauth_error, assert_refused_page

API_ENDPOINTS = ("/token", "/introspect", "/revoke")
CC = {"grant_type": "client_credentials"}


async def _app(tessera: TesseraDriver) -> AppClient:
    return await tessera.client()


async def _still_serving(tessera: TesseraDriver, app: AppClient) -> None:
    response = await tessera.token(app, **CC)
    assert response.status_code == 200, response.text
    assert (await tessera.introspect(app, response.json()["access_token"]))["active"] is True


async def _post(http: httpx.AsyncClient, path: str, body: bytes, *, app: AppClient | None,
                ctype: str | None = FORM_CONTENT_TYPE, **headers: str) -> httpx.Response:
    if ctype is not None:
        headers["content-type"] = ctype
    return await http.post(path, content=body, headers=headers,
                           auth=app.auth if app else None)  # type: ignore[arg-type]


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


async def _raw(identity: Identity, method: str, path: str, *, query: bytes = b"",
               headers: Sequence[tuple[bytes, bytes]] = (),
               chunks: Sequence[bytes] = (b"",)) -> httpx.Response:
    """Drive the ASGI app with exactly these bytes (httpx would normalise them)."""
    app = build_app(identity)
    pending: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "headers": list(headers),
             "client": ("192.0.2.1", 4321), "server": ("tessera.test", 80)}
    await app(scope, receive, send)
    start = sent[0]
    return httpx.Response(start["status"], headers=start["headers"],
                          content=b"".join(m.get("body", b"") for m in sent[1:]))


# --- bodies that are not forms --------------------------------------------------------

@pytest.mark.parametrize(("ctype", "body"), [
    ("application/json", b'{"grant_type": "client_credentials", "token": "x"}'),
    (None, b"grant_type=client_credentials&token=x"),
    ("text/plain", b"grant_type=client_credentials&token=x"),
    ("multipart/form-data; boundary=B", b'--B\r\nContent-Disposition: form-data; '
     b'name="grant_type"\r\n\r\nclient_credentials\r\n--B--\r\n'),
    (FORM_CONTENT_TYPE, b"grant_type=%ff%fe&token=%c3%28"),
    (FORM_CONTENT_TYPE, b"grant_type=client_credentials&token=\xff\xfe\x80"),
    (FORM_CONTENT_TYPE, b"grant_type=client_credentials&token=a%00b"),
    (FORM_CONTENT_TYPE, b"grant_type=client_credentials\r\n&token=x\r\n"),
    (FORM_CONTENT_TYPE, b"grant_type=client_credentials&scope=api%3Aread%0D%0Ax"),
], ids=["json", "no-content-type", "text-plain", "multipart", "bad-percent-utf8",
        "raw-non-utf8", "nul-byte", "crlf", "encoded-crlf"])
async def test_bodies_that_are_not_clean_forms_are_invalid_requests(
        tessera: TesseraDriver, ctype: str | None, body: bytes) -> None:
    app = await _app(tessera)
    for path in API_ENDPOINTS:
        response = await _post(tessera.http, path, body, app=app, ctype=ctype)
        assert_oauth_error(response, 400, "invalid_request")
    await _still_serving(tessera, app)


async def test_invalid_percent_escapes_stay_literal_and_are_refused(
        tessera: TesseraDriver) -> None:
    app = await _app(tessera)
    response = await _post(tessera.http, "/token", b"grant_type=%zz%", app=app)
    assert_oauth_error(response, 400, "unsupported_grant_type")


# --- parameters -----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "body"), [
    ("/token", b"grant_type=client_credentials&grant_type=client_credentials"),
    ("/token", b"grant_type=client_credentials&grant_type=password"),
    ("/token", b"grant_type=client_credentials&scope=api:read&scope=api:write"),
    ("/token", b"grant_type=client_credentials&client_id=a&client_id=b"),
    ("/introspect", b"token=a&token=b"),
    ("/revoke", b"token=a&token=b&token_type_hint=access_token"),
])
async def test_repeated_parameters_are_refused(tessera: TesseraDriver, path: str,
                                               body: bytes) -> None:
    """RFC 6749 §3.1, §3.2: parameters MUST NOT be included more than once."""
    app = await _app(tessera)
    body_ = assert_oauth_error(await _post(tessera.http, path, body, app=app), 400,
                               "invalid_request")
    assert "repeated" in body_["error_description"]


async def test_repeated_client_id_without_basic_is_refused(tessera: TesseraDriver) -> None:
    public = await tessera.web_client(public=True)
    body = f"grant_type=refresh_token&refresh_token=x&client_id={public.client_id}" \
           f"&client_id={public.client_id}".encode()
    assert_oauth_error(await _post(tessera.http, "/token", body, app=None), 400,
                       "invalid_request")


async def test_empty_values_count_as_absent(tessera: TesseraDriver) -> None:
    """RFC 6749 §3.1: parameters sent without a value are treated as omitted."""
    app = await _app(tessera)
    http = tessera.http
    assert_oauth_error(await _post(http, "/token", b"grant_type=", app=app), 400,
                       "invalid_request")
    assert_oauth_error(await _post(http, "/token", b"", app=app), 400, "invalid_request")
    assert_oauth_error(await _post(http, "/introspect", b"token=", app=app), 400,
                       "invalid_request")
    assert_oauth_error(await _post(http, "/token", b"grant_type=client_credentials&client_id="
                                   b"&client_secret=", app=None), 401, "invalid_client")
    # One empty and one real value: the empty one does not exist, so nothing repeats.
    ok = await _post(http, "/token", b"grant_type=&grant_type=client_credentials", app=app)
    assert ok.status_code == 200, ok.text


async def test_parameter_count_is_capped_at_64(tessera: TesseraDriver) -> None:
    """Unknown parameters are ignored (RFC 6749 §3.2), but not without limit."""
    app = await _app(tessera)
    junk = "&".join(f"x{i}=1" for i in range(63)).encode()
    ok = await _post(tessera.http, "/token", b"grant_type=client_credentials&" + junk,
                     app=app)
    assert ok.status_code == 200, ok.text
    refused = await _post(tessera.http, "/token",
                          b"grant_type=client_credentials&" + junk + b"&x63=1", app=app)
    assert_oauth_error(refused, 400, "invalid_request")


@pytest.mark.parametrize("body", [
    b"grant_type=client_credentials&scope=" + b"a" * 10_000,
    b"grant_type=client_credentials&" + b"n" * 10_000 + b"=1",
    b"grant_type=client_credentials&x=" + b"y" * 1_000_000,
], ids=["10k-value", "10k-name", "1MB-body"])
async def test_oversized_inputs_are_refused(tessera: TesseraDriver, body: bytes) -> None:
    app = await _app(tessera)
    for path in API_ENDPOINTS:
        assert_oauth_error(await _post(tessera.http, path, body, app=app), 400,
                           "invalid_request")
    await _still_serving(tessera, app)


@pytest.mark.parametrize("declared", [
    b"10", b"abc", b"-1", b"1e3", b" 5", "²".encode("latin-1"), b"9" * 5000, None])
async def test_lying_or_broken_content_length_with_a_large_body(
        tessera: TesseraDriver, identity: Identity, declared: bytes | None) -> None:
    """The declared length is checked, and the streamed body is counted regardless."""
    app = await _app(tessera)
    assert app.secret
    headers = [(b"content-type", FORM_CONTENT_TYPE.encode()),
               (b"authorization", _basic(f"{app.client_id}:{app.secret}".encode()).encode())]
    if declared is not None:
        headers.append((b"content-length", declared))
    chunks = [b"grant_type=client_credentials&x="] + [b"y" * 65_536] * 16
    for path in API_ENDPOINTS:
        response = await _raw(identity, "POST", path, headers=headers, chunks=chunks)
        assert_oauth_error(response, 400, "invalid_request")
    await _still_serving(tessera, app)


@pytest.mark.parametrize("grant_type", [
    "password", "implicit", "urn:ietf:params:oauth:grant-type:saml2-bearer",
    "urn:ietf:params:oauth:grant-type:jwt-bearer", "CLIENT_CREDENTIALS",
    "client_credentials ", "x" * 8000])
async def test_unknown_grant_types(tessera: TesseraDriver, grant_type: str) -> None:
    app = await _app(tessera)
    response = await tessera.token(app, grant_type=grant_type)
    assert_oauth_error(response, 400, "unsupported_grant_type")
    await _still_serving(tessera, app)


@pytest.mark.parametrize("grant_type", ["cl\u00efent_credentials", 'a"b', "client_credentials\t"])
async def test_unknown_grant_type_description_stays_in_the_rfc_charset(
        tessera: TesseraDriver, grant_type: str) -> None:
    app = await _app(tessera)
    assert_oauth_error(await tessera.token(app, grant_type=grant_type), 400,
                       "unsupported_grant_type")


async def test_missing_grant_type(tessera: TesseraDriver) -> None:
    app = await _app(tessera)
    assert_oauth_error(await tessera.token(app, scope="api:read"), 400, "invalid_request")


# --- client authentication ------------------------------------------------------------

@pytest.mark.parametrize("authorization", [
    b"Basic !!!not-base64!!!", b"Basic " + base64.b64encode(b"no-colon-here"),
    b"Basic " + base64.b64encode(b":secret-with-empty-id"), b"Basic ",
    b"Basic " + base64.b64encode(b"\xff\xfe:\x80"), "Basic \u00fc\u00e9".encode("latin-1"),
    b"Basic " + base64.b64encode(b"a%00b:secret"), b"Basic " + base64.b64encode(b"a:b%0d%0a"),
    b"Basic YQ", b"Basic " + b"QUFB" * 3000,
], ids=["not-base64", "no-colon", "empty-id", "empty", "not-utf8", "latin1-header",
        "nul-in-id", "crlf-in-secret", "bad-padding", "12k"])
async def test_malformed_basic_credentials(tessera: TesseraDriver, identity: Identity,
                                           authorization: bytes) -> None:
    """RFC 6749 §5.2: 401 invalid_client with a Basic challenge when Basic was tried."""
    app = await _app(tessera)
    for path in API_ENDPOINTS:
        response = await _raw(identity, "POST", path, headers=[
            (b"content-type", FORM_CONTENT_TYPE.encode()), (b"authorization", authorization)],
            chunks=[b"grant_type=client_credentials&token=x"])
        assert_oauth_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic")
    await _still_serving(tessera, app)


async def test_one_authentication_method_only(tessera: TesseraDriver) -> None:
    """RFC 6749 §2.3: Basic and client_secret together are refused."""
    app = await _app(tessera)
    assert app.secret
    both = await tessera.http.post("/token", auth=(app.client_id, app.secret),
                                   data={**CC, "client_secret": app.secret})
    assert_oauth_error(both, 400, "invalid_request", secrets=(app.secret,))
    mismatched = await tessera.http.post("/token", auth=(app.client_id, app.secret),
                                         data={**CC, "client_id": "someone-else"})
    assert_oauth_error(mismatched, 400, "invalid_request")


async def test_unknown_wrong_and_disabled_clients(tessera: TesseraDriver,
                                                  identity: Identity) -> None:
    app = await _app(tessera)
    assert app.secret
    client = await identity.clients.get(app.client_id)
    assert client is not None
    async with identity.store.unit_of_work() as uow:
        await uow.clients.add(dataclasses.replace(client, client_id="c_disabled",
                                                  disabled=True))
    public = await tessera.web_client(public=True)
    attempts: list[tuple[tuple[str, str] | None, dict[str, str]]] = [
        (("c_nobody", app.secret), CC),
        ((app.client_id, app.secret + "x"), CC),
        ((app.client_id, ""), CC),
        (("c_disabled", app.secret), CC),
        (None, {**CC, "client_id": "c_disabled", "client_secret": app.secret}),
        (None, {**CC, "client_id": "c_nobody"}),
        (None, {**CC, "client_id": app.client_id}),
        (None, {**CC, "client_id": public.client_id, "client_secret": "guess"}),
    ]
    for auth, data in attempts:
        for path in API_ENDPOINTS:
            response = await tessera.http.post(path, auth=auth,  # type: ignore[arg-type]
                                               data={**data, "token": "x"})
            assert_oauth_error(response, 401, "invalid_client", secrets=(app.secret,))
            if auth is not None:  # RFC 6749 §5.2: answer Basic with a Basic challenge
                assert response.headers["www-authenticate"].startswith("Basic")
    await _still_serving(tessera, app)


# --- URLs, routes, methods, headers ---------------------------------------------------

@pytest.mark.parametrize(("path", "query"), [
    ("/token", "client_secret=s"), ("/token", "refresh_token=r"), ("/token", "code=c"),
    ("/introspect", "token=t"), ("/revoke", "token=t"), ("/token", "code_verifier=v"),
])
async def test_credentials_in_the_query_string_are_refused(tessera: TesseraDriver,
                                                           path: str, query: str) -> None:
    """DESIGN §9: no tokens in URLs (RFC 6750 §2.3, RFC 9700 §4.3.2)."""
    app = await _app(tessera)
    response = await tessera.http.post(f"{path}?{query}", data={**CC, "token": "x"},
                                       auth=app.auth)  # type: ignore[arg-type]
    assert_oauth_error(response, 400, "invalid_request")


async def test_access_token_in_the_userinfo_query_is_refused(tessera: TesseraDriver) -> None:
    response = await tessera.http.get("/userinfo", params={"access_token": "abc.def.ghi"})
    assert_oauth_error(response, 400, "invalid_request", secrets=("abc.def.ghi",))


async def test_encoded_access_token_in_the_userinfo_query_is_refused(
        tessera: TesseraDriver) -> None:
    web = await tessera.web_client()
    await tessera.user()
    token = (await tessera.login_tokens(web))["access_token"]
    response = await tessera.http.get(f"/userinfo?access%5Ftoken={token}",
                                      headers={"authorization": f"Bearer {token}"})
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/nope", 404), ("POST", "/token/../admin", 404), ("GET", "/admin", 404),
    ("GET", "/token", 405), ("PUT", "/introspect", 405), ("DELETE", "/revoke", 405),
    ("GET", "/admin/sessions", 405), ("PATCH", "/userinfo", 405), ("POST", "/jwks", 405),
    ("PUT", "/authorize", 405), ("DELETE", "/logout", 405), ("TRACE", "/token", 405),
])
async def test_unknown_routes_and_wrong_methods(tessera: TesseraDriver, method: str,
                                                path: str, status: int) -> None:
    response = await tessera.http.request(method, path, content=b"a=1")
    body = assert_oauth_error(response, status)
    assert body["error"] in {"not_found", "method_not_allowed"}


async def test_method_not_allowed_names_the_allowed_methods(tessera: TesseraDriver) -> None:
    response = await tessera.http.get("/token")
    assert response.status_code == 405
    assert response.headers.get("allow") == "POST"


@pytest.mark.parametrize("path", ["/token/", "/introspect/x", "/Token"])
async def test_near_miss_paths_of_the_protocol_endpoints_are_not_served_by_them(
        tessera: TesseraDriver, path: str) -> None:
    """``ProtocolRoutes`` answers exact paths only; anything else is the router's."""
    response = await tessera.http.post(path, content=b"grant_type=client_credentials",
                                       follow_redirects=False)
    assert response.status_code in {307, 404}
    assert "access_token" not in response.text


async def test_an_unexpected_error_on_a_protocol_endpoint_is_a_bare_500(
        identity: Identity, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot-path layer lets a bug reach Starlette's server-error handler, as a route
    does: a JSON 500 without internals (and the error logged, re-raised to the server)."""
    async def broken(_request: object) -> None:
        raise RuntimeError("internal detail 0xdeadbeef")

    monkeypatch.setattr(identity.introspection, "handle", broken)
    app = build_app(identity)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"token=x", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/introspect",
             "raw_path": b"/introspect", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", FORM_CONTENT_TYPE.encode())],
             "client": ("192.0.2.1", 4321), "server": ("tessera.test", 80)}
    with pytest.raises(RuntimeError):
        await app(scope, receive, send)
    assert sent[0]["status"] == 500
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body == b'{"error":"server_error"}'


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/userinfo",
                                  "/admin/sessions"])
async def test_query_string_that_is_not_utf8(tessera: TesseraDriver, identity: Identity,
                                             path: str) -> None:
    response = await _raw(identity, "POST", path, query=b"x=\xff\xfe",
                          headers=[(b"content-type", FORM_CONTENT_TYPE.encode())])
    assert_oauth_error(response, 400, "invalid_request")
    await _still_serving(tessera, await _app(tessera))


@pytest.mark.parametrize("path", ["/authorize", "/logout"])
async def test_browser_query_string_that_is_not_utf8(identity: Identity, path: str) -> None:
    assert_refused_page(await _raw(identity, "GET", path, query=b"client_id=\xff"))


@pytest.mark.parametrize("name", [b"authorization", b"content-type"])
async def test_repeated_security_headers_are_refused(tessera: TesseraDriver,
                                                     identity: Identity, name: bytes) -> None:
    app = await _app(tessera)
    assert app.secret
    other = await _app(tessera)
    assert other.secret
    values = {b"authorization": [_basic(f"{a.client_id}:{a.secret}".encode()).encode()
                                 for a in (app, other)],
              b"content-type": [FORM_CONTENT_TYPE.encode(), b"application/json"]}[name]
    headers = [(b"content-type", FORM_CONTENT_TYPE.encode()),
               (b"authorization", _basic(f"{app.client_id}:{app.secret}".encode()).encode())]
    headers = [h for h in headers if h[0] != name] + [(name, v) for v in values]
    response = await _raw(identity, "POST", "/token", headers=headers,
                          chunks=[b"grant_type=client_credentials"])
    assert_oauth_error(response, 400, "invalid_request")


# --- browser endpoints ----------------------------------------------------------------

async def test_authorize_refuses_broken_requests_without_redirecting(
        tessera: TesseraDriver, identity: Identity) -> None:
    web = await tessera.web_client()
    base = f"response_type=code&client_id={web.client_id}&scope=openid"
    queries = [
        f"{base}&client_id={web.client_id}&redirect_uri={REDIRECT}",
        f"{base}&redirect_uri={REDIRECT}&state=%ff",
        f"{base}&redirect_uri={REDIRECT}&state=" + "s" * 10_000,
        f"{base}&redirect_uri={REDIRECT}&state=a%00b",
        "&".join(f"p{i}=1" for i in range(80)),
        "response_type=code&client_id=c_nobody&redirect_uri=" + REDIRECT,
        *(f"{base}&redirect_uri={quote(uri, safe='')}" for uri in (
            REDIRECT + "/", REDIRECT.upper(), REDIRECT + "?x=1", REDIRECT + "#f",
            REDIRECT.replace("https", "http"), REDIRECT + "%2F..%2Fevil", REDIRECT[:-1],
            "https://app.example.evil.example/cb", "https://app.example/cb/../cb")),
    ]
    for query in queries:
        assert_refused_page(await tessera.http.get(f"/authorize?{query}"))
    big = await tessera.http.post("/authorize", content=b"username=" + b"u" * 1_000_000,
                                  headers={"content-type": FORM_CONTENT_TYPE})
    assert_refused_page(big)
    await tessera.user()
    assert await tessera.authorize_code(web)  # still serving


async def test_redirect_uri_must_match_exactly_at_the_token_endpoint(
        tessera: TesseraDriver) -> None:
    web = await tessera.web_client()
    await tessera.user()
    code = await tessera.authorize_code(web)
    response = await tessera.token(web, grant_type="authorization_code", code=code,
                                   redirect_uri=REDIRECT + "/")
    assert_oauth_error(response, 400, "invalid_grant", secrets=(code,))


@pytest.mark.parametrize("username", ["zo\u00eb-\u0142ukasz", "\u65e5\u672c\u8a9e",
                                      "\U0001f512admin", "Stra\u00dfe"])
async def test_unicode_usernames_log_in(tessera: TesseraDriver, username: str) -> None:
    web = await tessera.web_client()
    await tessera.user(username)
    assert await tessera.authorize_code(web, username=username)


@pytest.mark.parametrize(("username", "status"), [
    ("zo\u00eb", 401), ("u" * 10_000, 400), ("ali\x00ce", 400), ("alice\r\nX: y", 400),
    ("alice\u202e", 401), ("", 401)])
async def test_bad_usernames_are_refused(tessera: TesseraDriver, username: str,
                                         status: int) -> None:
    web = await tessera.web_client()
    await tessera.user()
    page = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": web.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "s"})
    csrf = page.text.split("name='csrf_token' value='")[1].split("'")[0]
    response = await tessera.http.post("/authorize", data={
        "response_type": "code", "client_id": web.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "s", "csrf_token": csrf, "username": username,
        "password": "correct horse battery"})
    assert response.status_code == status, response.text[:300]
    assert "location" not in response.headers
    assert_no_leak(response, "correct horse battery")
    assert await tessera.authorize_code(web)  # alice still gets in


async def test_logout_refuses_bad_hints_and_unregistered_redirects(
        tessera: TesseraDriver) -> None:
    web = await tessera.web_client(post_logout_redirect_uris=("https://app.example/bye",))
    for params in (
        {"id_token_hint": "garbage"},
        {"id_token_hint": "eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0."},
        {"id_token_hint": "a.b.c.d"},
        {"client_id": web.client_id, "post_logout_redirect_uri": "https://evil.example/"},
        {"client_id": web.client_id, "post_logout_redirect_uri": "https://app.example/bye/"},
        {"post_logout_redirect_uri": "https://app.example/bye"},
    ):
        assert_refused_page(await tessera.http.get("/logout", params=params))


async def test_admin_sessions_refuses_bad_bodies(tessera: TesseraDriver) -> None:
    operator = await tessera.client(scope="tessera:admin", audiences=())
    token = (await tessera.token(operator, **CC, scope="tessera:admin")).json()["access_token"]
    bearer = {"authorization": f"Bearer {token}"}
    for body, ctype in (
        (b'{"action": "revoke", "sid": "x"}', "application/json"),
        (b"action=revoke&action=bump_version&sid=x", FORM_CONTENT_TYPE),
        (b"action=explode&sid=x", FORM_CONTENT_TYPE),
        (b"action=revoke", FORM_CONTENT_TYPE),
        (b"action=revoke&sid=x&user_id=y", FORM_CONTENT_TYPE),
        (b"action=revoke&sid=\xff", FORM_CONTENT_TYPE),
        (b"action=revoke&sid=" + b"s" * 20_000, FORM_CONTENT_TYPE),
    ):
        response = await tessera.http.post("/admin/sessions", content=body,
                                           headers={**bearer, "content-type": ctype})
        assert_oauth_error(response, 400, "invalid_request", secrets=(token,))
    ok = await tessera.http.post("/admin/sessions", data={"action": "revoke", "sid": "none"},
                                 headers=bearer)
    assert ok.status_code == 200 and ok.json() == {"sessions": 0}
