"""RP-Initiated Logout 1.0 (GET/POST /logout): an ``id_token_hint`` ends its session and
redirects to a registered ``post_logout_redirect_uri``; a browser cookie alone needs a
confirmation with a CSRF token."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tessera.core.clock import FixedClock
from tessera.identity.compose import Identity
from tessera.observability import events
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
