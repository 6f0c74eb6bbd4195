"""RP-Initiated Logout 1.0 (GET/POST /logout): an ``id_token_hint`` for the browser's own
session ends it and redirects to a registered ``post_logout_redirect_uri``; a browser
cookie alone, a hint for another session or a hint without a browser session needs a
confirmation with a CSRF token (§2: the OP MUST ask)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from tessera.core.clock import FixedClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.observability import events
from tests.conftest import ISSUER
from tests.e2e.helpers import audit_rows, claims_of, form_fields, logged_in, refresh
from tests.support import AppClient, TesseraDriver

AFTER = "https://app.example/bye"


async def _assert_ended(tessera: TesseraDriver, app: AppClient,
                        tokens: dict[str, str]) -> None:
    assert (await refresh(tessera, app, tokens["refresh_token"])).json()["error"] == \
        "invalid_grant"
    assert await tessera.introspect(app, tokens["access_token"]) == {"active": False}


async def test_id_token_hint_ends_the_session_and_redirects_with_state(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera, post_logout_redirect_uris=(AFTER,))
    response = await tessera.http.get("/logout", params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": AFTER,
        "state": "bye-1"})
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == AFTER
    assert parse_qs(location.query) == {"state": ["bye-1"]}
    await _assert_ended(tessera, app, tokens)
    sid = claims_of(tokens["access_token"])["sid"]
    logouts = await audit_rows(identity, events.SESSION_LOGOUT)
    assert [r.fields["sid"] for r in logouts] == [sid]


async def test_post_with_id_token_hint_works_too(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera, post_logout_redirect_uris=(AFTER,))
    response = await tessera.http.post("/logout", data={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": AFTER})
    assert response.status_code == 303 and response.headers["location"] == AFTER
    await _assert_ended(tessera, app, tokens)


async def test_expired_id_token_hint_is_still_accepted(tessera: TesseraDriver,
                                                       clock: FixedClock) -> None:
    app, tokens = await logged_in(tessera)
    clock.advance(3600)
    response = await tessera.http.get("/logout", params={"id_token_hint": tokens["id_token"]})
    assert response.status_code == 200 and "signed out" in response.text
    assert (await refresh(tessera, app, tokens["refresh_token"])).json()["error"] == \
        "invalid_grant"


async def test_unregistered_redirect_is_refused_and_nothing_ends(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera, post_logout_redirect_uris=(AFTER,))
    response = await tessera.http.get("/logout", params={
        "id_token_hint": tokens["id_token"],
        "post_logout_redirect_uri": "https://evil.example/bye"})
    assert response.status_code == 400 and "location" not in response.headers
    assert "text/html" in response.headers["content-type"]
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True
    assert (await refresh(tessera, app, tokens["refresh_token"])).status_code == 200
    assert await audit_rows(identity, events.SESSION_LOGOUT) == []


async def test_redirect_registered_for_another_client_is_refused(
        tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    await tessera.web_client(post_logout_redirect_uris=(AFTER,))
    response = await tessera.http.get("/logout", params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": AFTER})
    assert response.status_code == 400
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True


async def test_forged_id_token_hint_is_refused(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    header, payload, _ = tokens["id_token"].split(".")
    response = await tessera.http.get("/logout", params={
        "id_token_hint": f"{header}.{payload}.AAAA"})
    assert response.status_code == 400
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True


async def test_an_access_token_is_not_an_id_token_hint(tessera: TesseraDriver) -> None:
    """Explicit typing (RFC 8725 §3.11): an at+jwt, signed by the same key, must not be
    accepted where an ID token is expected."""
    app, tokens = await logged_in(tessera)
    response = await tessera.http.get("/logout",
                                      params={"id_token_hint": tokens["access_token"]})
    assert response.status_code == 400
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True


async def test_cookie_only_logout_asks_for_confirmation(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    page = await tessera.http.get("/logout")
    assert page.status_code == 200 and "Sign out?" in page.text
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True

    form = form_fields(page.text)
    assert form.get("confirm") == "yes" and form.get("csrf_token")
    forged = await tessera.http.post("/logout", data={**form, "csrf_token": "0" * 64})
    assert forged.status_code == 200 and "Sign out?" in forged.text
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True

    done = await tessera.http.post("/logout", data=form)
    assert done.status_code == 200 and "signed out" in done.text
    await _assert_ended(tessera, app, tokens)
    logouts = await audit_rows(identity, events.SESSION_LOGOUT)
    assert [r.fields["sid"] for r in logouts] == [claims_of(tokens["access_token"])["sid"]]
    # the browser is signed out: the next authorization shows the login form
    again = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": app.client_id, "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256"})
    assert again.status_code == 200 and "Sign in" in again.text


async def test_cookie_logout_confirmation_keeps_the_redirect(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera, post_logout_redirect_uris=(AFTER,))
    page = await tessera.http.get("/logout", params={
        "client_id": app.client_id, "post_logout_redirect_uri": AFTER, "state": "s"})
    assert page.status_code == 200
    form = form_fields(page.text)
    done = await tessera.http.post("/logout", data=form)
    assert done.status_code == 303 and done.headers["location"] == f"{AFTER}?state=s"
    await _assert_ended(tessera, app, tokens)


async def test_logout_without_session_or_hint_just_says_signed_out(
        tessera: TesseraDriver) -> None:
    response = await tessera.http.get("/logout")
    assert response.status_code == 200 and "signed out" in response.text


# -- a hint that is not this browser's session: ask first (RP-Initiated Logout §2) -------


async def test_a_hint_for_another_session_asks_before_ending_anything(
        tessera: TesseraDriver, identity: Identity) -> None:
    """The victim's browser is signed in; a page makes it open /logout with a hint for a
    session of someone else (the attacker's own, or any leaked ID token)."""
    app, victim = await logged_in(tessera, username="alice")
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                              base_url=ISSUER)
    await tessera.user("mallory")
    async with other:
        attacker = await TesseraDriver(identity, other).login_tokens(app, username="mallory")
    page = await tessera.http.get("/logout", params={"id_token_hint": attacker["id_token"]})
    assert page.status_code == 200 and "Sign out?" in page.text
    for tokens in (victim, attacker):
        assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True
    assert await audit_rows(identity, events.SESSION_LOGOUT) == []

    form = form_fields(page.text)
    assert form["id_token_hint"] == attacker["id_token"]
    done = await tessera.http.post("/logout", data=form)
    assert done.status_code == 200 and "signed out" in done.text
    await _assert_ended(tessera, app, victim)
    await _assert_ended(tessera, app, attacker)


async def test_a_hint_in_a_browser_without_a_session_asks_too(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    fresh = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                              base_url=ISSUER)
    async with fresh:
        page = await fresh.get("/logout", params={"id_token_hint": tokens["id_token"]})
        assert page.status_code == 200 and "Sign out?" in page.text
        assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True
        form = form_fields(page.text)
        forged = await fresh.post("/logout", data=form | {"csrf_token": "x"})
        assert "Sign out?" in forged.text
        assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True
        done = await fresh.post("/logout", data=form)
        assert done.status_code == 200 and "signed out" in done.text
    await _assert_ended(tessera, app, tokens)


async def test_a_matching_hint_still_ends_the_session_at_once(
        tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    response = await tessera.http.get("/logout", params={"id_token_hint": tokens["id_token"]})
    assert response.status_code == 200 and "signed out" in response.text
    assert "Sign out?" not in response.text
    await _assert_ended(tessera, app, tokens)
