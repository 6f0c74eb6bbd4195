"""Who gets in: administrators only, with a strong and recent enough authentication."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp

from tessera.application import accounts
from tessera.core.acr import ACR_MFA
from tessera.core.clock import FixedClock
from tessera.core.users import User
from tessera.identity.compose import Identity
from tessera.observability import events
from tests.unit.console.conftest import PASSWORD, ConsoleDriver, csrf_of


def _login_redirect(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert location.path == "/console/login"
    return parse_qs(location.query)


async def _user(identity: Identity, username: str) -> User:
    async with identity.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_username("default", username)
    assert user is not None
    return user


async def test_without_a_session_every_page_sends_to_the_login_form(
        console: ConsoleDriver) -> None:
    for path in ("/console/", "/console/sessions?username=a", "/console/audit",
                 "/console/journey", "/console/sessions/xyz"):
        query = _login_redirect(await console.http.get(path))
        assert query["why"] == ["no_session"]
    assert _login_redirect(await console.http.get("/console/audit?event=token.issued"))[
        "next"] == ["/console/audit?event=token.issued"]
    # a POST is not replayed after sign-in: back to the list
    posted = await console.http.post("/console/revoke", data={"kind": "user"})
    assert _login_redirect(posted)["next"] == ["/console/sessions"]


async def test_an_admin_signs_in_and_lands_where_they_were_going(
        console: ConsoleDriver) -> None:
    await console.tessera.user("root", roles=("platform-admin",))
    page = await console.http.get("/console/login", params={"next": "/console/audit"})
    response = await console.http.post("/console/login", data={
        "csrf_token": csrf_of(page.text), "username": "root", "password": PASSWORD,
        "next": "/console/audit"})
    assert response.status_code == 303 and response.headers["location"] == "/console/audit"
    assert "tessera_session" in response.cookies
    assert (await console.http.get("/console/audit")).status_code == 200


async def test_next_never_leaves_the_console(console: ConsoleDriver) -> None:
    await console.tessera.user("root", roles=("platform-admin",))
    for target in ("https://evil.example/", "//evil.example/console/", "/console/../admin",
                   "/console\\@evil", "/elsewhere"):
        console.http.cookies.clear()
        response = await console.login(next=target)
        assert response.headers["location"] == "/console/sessions", target


async def test_wrong_password_is_refused_without_a_session(console: ConsoleDriver) -> None:
    await console.tessera.user("root", roles=("platform-admin",))
    response = await console.login(password="wrong password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.text
    assert "tessera_session" not in response.cookies


async def test_a_non_admin_is_refused_at_login_and_with_an_sso_session(
        console: ConsoleDriver, identity: Identity) -> None:
    await console.user_session("alice")
    response = await console.login("alice")
    assert response.status_code == 403
    assert "not a console administrator" in response.text
    assert "tessera_session" not in response.cookies
    async with identity.store.unit_of_work(read_only=True) as uow:
        failures = await uow.audit.query(event=events.LOGIN_FAILED)
    assert [f.fields["reason"] for f in failures] == ["console_not_admin"]
    # alice's single sign-on session from /authorize does not open the console either
    console.http.cookies.clear()
    app = await console.tessera.web_client()
    await console.tessera.login_tokens(app, username="alice")
    page = await console.http.get("/console/sessions")
    assert page.status_code == 403 and "not a console administrator" in page.text
    assert "alice" not in page.text


async def test_revoking_the_role_locks_the_administrator_out_at_once(
        console: ConsoleDriver, identity: Identity) -> None:
    await console.admin()
    assert (await console.http.get("/console/sessions")).status_code == 200
    root = await _user(identity, "root")
    assert await accounts.revoke_role(identity.admin, root, "platform-admin", actor="test")
    # the role is gone now; the session's version moved on too
    assert (await console.http.get("/console/sessions")).status_code == 403


async def test_a_stale_authentication_must_sign_in_again_in_the_same_session(
        console: ConsoleDriver, clock: FixedClock) -> None:
    await console.admin()
    before = (await console.http.get("/console/sessions")).text
    clock.advance(901)
    query = _login_redirect(await console.http.get("/console/sessions?tenant=default"))
    assert query["why"] == ["stale"] and query["next"] == ["/console/sessions?tenant=default"]
    form = await console.http.get("/console/login", params={"why": "stale"})
    assert "from the last 15 minutes" in form.text
    assert (await console.login()).status_code == 303
    after = await console.http.get("/console/sessions")
    assert after.status_code == 200
    sid = before.split("/console/sessions/")[1].split("'")[0]
    assert f"/console/sessions/{sid}'" in after.text  # re-authenticated, not a new session


async def test_step_up_requires_a_second_factor(console: ConsoleDriver, identity: Identity,
                                                clock: FixedClock) -> None:
    await console.admin()  # signed in with a password only
    identity.settings.console.required_acr = ACR_MFA
    query = _login_redirect(await console.http.get("/console/sessions"))
    assert query["why"] == ["step_up"]
    response = await console.login()
    assert response.status_code == 403
    assert "requires urn:tessera:acr:mfa" in response.text
    root = await _user(identity, "root")
    enrolment = await identity.totp.provision(root, actor="test")
    response = await console.login()
    assert response.status_code == 401 and "one-time code" in response.text
    response = await console.login(totp_code="000000" if pyotp.TOTP(enrolment.secret).at(
        clock.now()) != "000000" else "111111")
    assert response.status_code == 401
    clock.advance(30)
    response = await console.login(totp_code=pyotp.TOTP(enrolment.secret).at(clock.now()))
    assert response.status_code == 303, response.text
    page = await console.http.get("/console/sessions")
    assert page.status_code == 200 and ACR_MFA in page.text


async def test_login_form_post_needs_its_csrf_token(console: ConsoleDriver) -> None:
    await console.tessera.user("root", roles=("platform-admin",))
    await console.http.get("/console/login")
    response = await console.http.post("/console/login", data={
        "username": "root", "password": "correct horse battery"})
    assert response.status_code == 400 and "form expired" in response.text
    response = await console.http.post("/console/login", data={
        "username": "root", "password": "correct horse battery", "csrf_token": "0" * 64})
    assert response.status_code == 400
    assert "tessera_session" not in response.cookies


def test_console_csrf_tokens_are_bound_to_browser_admin_session_and_time() -> None:
    from tessera.console.gate import Csrf

    clock = FixedClock(1_700_000_000.0)
    csrf = Csrf(b"k" * 32, clock, cookie="c")
    token, fresh = csrf.issue({}, "sid-1")
    assert fresh is not None and len(fresh) >= 16
    cookies = {"c": fresh}
    assert csrf.issue(cookies, "sid-1")[1] is None  # a usable cookie is kept
    assert csrf.check(cookies, token, "sid-1")
    assert not csrf.check(cookies, token, "sid-2")          # another admin session
    assert not csrf.check(cookies, token, "login")          # another form
    assert not csrf.check({"c": "x" * 32}, token, "sid-1")  # another browser
    assert not csrf.check({}, token, "sid-1")
    assert not csrf.check(cookies, None, "sid-1")
    assert not csrf.check(cookies, token + "x", "sid-1")
    clock.advance(901)
    assert not csrf.check(cookies, token, "sid-1")          # expired
