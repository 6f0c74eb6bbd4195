"""Browser cookies and login CSRF, as an attacker who can plant cookies or submit forms
from a sibling site meets them: ``__Host-`` + ``Secure`` cookies with an https issuer, and
CSRF tokens bound to the browser, the form's purpose and its transaction, with an expiry
and an origin check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from tessera.core.clock import FixedClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.store.sql import SqlStore
from tests.conftest import ISSUER, make_identity, make_settings
from tests.e2e.helpers import form_fields
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair

SECURE_ISSUER = "https://id.tessera.test"
PASSWORD = "correct horse battery"


@pytest.fixture
async def secure(tmp_path: Path, sqlite_store: SqlStore, clock: FixedClock
                 ) -> AsyncIterator[TesseraDriver]:
    identity = await make_identity(make_settings(tmp_path, issuer=SECURE_ISSUER),
                                   sqlite_store, clock)
    transport = httpx.ASGITransport(app=build_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=SECURE_ISSUER) as http:
        yield TesseraDriver(identity, http)
    await identity.audit.aclose()


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    found: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


def authorize_params(app: AppClient, **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
            "scope": "openid", "state": "s-1", "code_challenge": pkce_pair()[1],
            "code_challenge_method": "S256", **extra}


async def test_https_issuer_cookies_are_host_prefixed_and_secure(
        secure: TesseraDriver) -> None:
    app = await secure.web_client()
    await secure.user()
    page = await secure.http.get("/authorize", params=authorize_params(app))
    csrf = set_cookies(page)["__Host-tessera_csrf"]["__Host-tessera_csrf"]
    form = form_fields(page.text) | {"username": "alice", "password": PASSWORD}
    done = await secure.http.post("/authorize", data=form)
    assert done.status_code == 303, done.text
    session = set_cookies(done)["__Host-tessera_session"]["__Host-tessera_session"]
    for cookie in (csrf, session):
        assert cookie["secure"] and cookie["httponly"]
        assert cookie["path"] == "/" and not cookie["domain"]
        assert cookie["samesite"].lower() == "lax"
    assert "tessera_session" not in set_cookies(done)


async def test_an_unprefixed_planted_session_cookie_is_ignored(
        secure: TesseraDriver) -> None:
    app = await secure.web_client()
    await secure.user()
    await secure.login_tokens(app)
    handle = secure.http.cookies["__Host-tessera_session"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(
            secure.identity)), base_url=SECURE_ISSUER) as planted:
        planted.cookies.set("tessera_session", handle)  # what a sibling domain could set
        page = await planted.get("/authorize", params=authorize_params(app, prompt="none"))
        assert page.status_code == 303 and "error=login_required" in page.headers["location"]


async def test_http_issuer_cookies_are_plain(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    page = await tessera.http.get("/authorize", params=authorize_params(app))
    cookie = set_cookies(page)["tessera_csrf"]["tessera_csrf"]
    assert not cookie["secure"] and cookie["httponly"] and cookie["path"] == "/"
    assert ISSUER.startswith("http://")


async def test_a_planted_cookie_and_token_pair_does_not_fit_the_victims_login(
        tessera: TesseraDriver, identity: Identity) -> None:
    """The attacker opens a login page of their own, then plants that cookie and token in
    the victim's browser: the victim's own authorization request refuses them."""
    app = await tessera.web_client()
    await tessera.user("mallory")
    attacker_page = await tessera.http.get("/authorize", params=authorize_params(app))
    cookie = tessera.http.cookies["tessera_csrf"]
    token = form_fields(attacker_page.text)["csrf_token"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                                 base_url=ISSUER) as victim:
        page = await victim.get("/authorize", params=authorize_params(app, state="victim"))
        victim.cookies.set("tessera_csrf", cookie)
        form = form_fields(page.text) | {"csrf_token": token, "username": "mallory",
                                         "password": PASSWORD}
        refused = await victim.post("/authorize", data=form)
        assert refused.status_code == 400 and "expired" in refused.text
        assert "tessera_session" not in victim.cookies


async def test_a_token_is_for_one_purpose_and_expires(
        tessera: TesseraDriver, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await tessera.login_tokens(app)
    logout_page = await tessera.http.get("/logout")
    logout_token = form_fields(logout_page.text)["csrf_token"]
    page = await tessera.http.get("/authorize", params=authorize_params(app, prompt="login"))
    form = form_fields(page.text) | {"username": "alice", "password": PASSWORD}
    wrong_purpose = await tessera.http.post("/authorize",
                                            data=form | {"csrf_token": logout_token})
    assert wrong_purpose.status_code == 400
    clock.advance(901)
    late = await tessera.http.post("/authorize", data=form)
    assert late.status_code == 400 and "expired" in late.text
    fresh = form_fields(late.text) | {"username": "alice", "password": PASSWORD}
    assert (await tessera.http.post("/authorize", data=fresh)).status_code == 303


@pytest.mark.parametrize("headers", [
    {"origin": "https://evil.tessera.test"},
    {"origin": "http://tessera.test:8443"},
    {"origin": "null", "sec-fetch-site": "cross-site"},  # a sandboxed frame
    {"sec-fetch-site": "same-site"},
    {"sec-fetch-site": "cross-site"},
])
async def test_forms_posted_from_another_origin_are_refused(
        tessera: TesseraDriver, headers: dict[str, str]) -> None:
    app = await tessera.web_client()
    await tessera.user()
    page = await tessera.http.get("/authorize", params=authorize_params(app))
    form = form_fields(page.text) | {"username": "alice", "password": PASSWORD}
    refused = await tessera.http.post("/authorize", data=form, headers=headers)
    assert refused.status_code == 400, refused.text
    same = await tessera.http.post("/authorize", data=form, headers={
        "origin": ISSUER, "sec-fetch-site": "same-origin"})
    assert same.status_code == 303, same.text


async def test_our_own_pages_let_browsers_name_their_origin(tessera: TesseraDriver) -> None:
    """With ``Referrer-Policy: no-referrer`` a browser posts our own forms with
    ``Origin: null``; ``same-origin`` keeps referrers in and names the origin."""
    app = await tessera.web_client()
    await tessera.user()
    page = await tessera.http.get("/authorize", params=authorize_params(app))
    assert page.headers["referrer-policy"] == "same-origin"
    form = form_fields(page.text) | {"username": "alice", "password": PASSWORD}
    private = await tessera.http.post("/authorize", data=form, headers={
        "origin": "null", "sec-fetch-site": "same-origin"})
    assert private.status_code == 303, private.text
