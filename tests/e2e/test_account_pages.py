"""The signed-in user's own pages (issue 9, item 5): password change, and two-step
verification management — enrolment only after a recent login, recovery codes (shown
once, each good once, also at the login's code step), turning it off with a fresh second
factor. Every POST needs a CSRF token bound to the browser's session."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyotp
import pytest

from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationKind
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.observability import events
from tessera.store.sql import SqlStore
from tests.conftest import make_identity, make_settings
from tests.e2e.helpers import (
    audit_rows,
    claims_of,
    form_fields,
    last_seq,
    published_kinds,
    refresh,
)
from tests.e2e.test_step_up import _code, _password, _query, _redeem, _start
from tests.support import AppClient, TesseraDriver

PASSWORD = "correct horse battery"
SECURE_ISSUER = "https://id.tessera.test"


def _secret(page: httpx.Response) -> str:
    found = re.search(r"<code id=totp_secret>([A-Z2-7]+)</code>", page.text)
    assert found, page.text
    return found.group(1)


def _codes(page: httpx.Response) -> list[str]:
    return re.findall(r"<li>([A-Z2-7]{5}-[A-Z2-7]{5})</li>", page.text)


async def _signed_in(tessera: TesseraDriver) -> AppClient:
    app = await tessera.web_client()
    await tessera.user()
    await tessera.login_tokens(app)
    return app


async def _enrol(tessera: TesseraDriver, clock: FixedClock) -> tuple[str, list[str]]:
    page = await tessera.http.get("/account/totp")
    secret = _secret(page)
    done = await tessera.http.post("/account/totp", data=form_fields(page.text) | {
        "totp_code": pyotp.TOTP(secret).at(int(clock.now()))})
    assert done.status_code == 200 and "is on" in done.text, done.text
    return secret, _codes(done)


# -- password ------------------------------------------------------------------------------

async def test_changing_the_password_signs_out_every_other_session(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    user_id = await tessera.user()
    elsewhere = await tessera.login_tokens(app)  # another browser
    tessera.http.cookies.clear()
    here = await tessera.login_tokens(app)
    form = await tessera.http.get("/account/password")
    assert form.status_code == 200 and form.headers["cache-control"] == "no-store"
    fields = form_fields(form.text)

    wrong = await tessera.http.post("/account/password", data=fields | {
        "current_password": "not it", "new_password": "a new long secret",
        "confirm_password": "a new long secret"})
    assert wrong.status_code == 401 and "not right" in wrong.text
    mismatch = await tessera.http.post("/account/password", data=fields | {
        "current_password": PASSWORD, "new_password": "a new long secret",
        "confirm_password": "another one"})
    assert mismatch.status_code == 400 and "do not match" in mismatch.text
    short = await tessera.http.post("/account/password", data=fields | {
        "current_password": PASSWORD, "new_password": "short", "confirm_password": "short"})
    assert short.status_code == 400 and "at least 8" in short.text
    forged = await tessera.http.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a new long secret",
        "confirm_password": "a new long secret"})
    assert forged.status_code == 400 and "expired" in forged.text

    seq = await last_seq(identity)
    old_cookie = tessera.http.cookies.get("tessera_session")
    done = await tessera.http.post("/account/password", data=fields | {
        "current_password": PASSWORD, "new_password": "a new long secret",
        "confirm_password": "a new long secret"})
    assert done.status_code == 200 and "1 other session" in done.text, done.text
    assert tessera.http.cookies.get("tessera_session") != old_cookie  # a new cookie
    published = await published_kinds(identity, seq)
    assert (RevocationKind.USER_REVOKED, user_id) in published
    assert (RevocationKind.SESSION_REVOKED, claims_of(elsewhere["access_token"])["sid"]) \
        in published
    assert (await refresh(tessera, app, elsewhere["refresh_token"])).json()[
        "error"] == "invalid_grant"
    clock.advance(1)
    kept = await refresh(tessera, app, here["refresh_token"])  # this session stays
    assert kept.status_code == 200, kept.text
    assert (await tessera.introspect(app, kept.json()["access_token"]))["active"] is True
    assert [r.fields["user_id"] for r in
            await audit_rows(identity, events.USER_PASSWORD_CHANGED)] == [user_id]
    tessera.http.cookies.clear()
    await tessera.login_tokens(app, password="a new long secret")


async def test_account_pages_need_a_session(tessera: TesseraDriver) -> None:
    for path in ("/account", "/account/password", "/account/totp"):
        response = await tessera.http.get(path)
        assert response.status_code == 401 and "Sign in" in response.text
    await _signed_in(tessera)
    overview = await tessera.http.get("/account")
    assert overview.status_code == 200 and "alice" in overview.text
    assert "<b id=totp_status>off</b>" in overview.text


# -- two-step verification -------------------------------------------------------------------

async def test_enrolment_needs_a_recent_login(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    await _signed_in(tessera)
    clock.advance(identity.settings.account.recent_auth_seconds + 1)
    asked = await tessera.http.get("/account/totp")
    assert asked.status_code == 200 and "Confirm it is you" in asked.text
    assert "totp_secret" not in asked.text
    # the code step cannot be skipped to: a POST without a recent login asks again
    skipped = await tessera.http.post("/account/totp", data=form_fields(asked.text) | {
        "step": "enrol", "totp_code": "123456"})
    assert "Confirm it is you" in skipped.text
    wrong = await tessera.http.post("/account/totp", data=form_fields(asked.text) | {
        "password": "not it"})
    assert wrong.status_code == 401 and "Confirm it is you" in wrong.text
    right = await tessera.http.post("/account/totp", data=form_fields(asked.text) | {
        "password": PASSWORD})
    assert right.status_code == 200 and _secret(right)
    reauthenticated = await audit_rows(identity, events.SESSION_REAUTHENTICATED)
    assert len(reauthenticated) == 1


async def test_recovery_codes_are_shown_once_and_each_signs_in_once(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await _signed_in(tessera)
    _, codes = await _enrol(tessera, clock)
    assert len(codes) == identity.settings.account.recovery_codes == len(set(codes))
    shown = await tessera.http.get("/account/totp")
    assert not set(codes) & set(_codes(shown))  # never again
    async with identity.store.unit_of_work(read_only=True) as uow:
        alice = await uow.users.by_username("default", "alice")
        assert alice is not None
        assert await uow.recovery_codes.remaining(alice.user_id) == len(codes)

    tessera.http.cookies.clear()
    page, verifier = await _start(tessera, app)
    asked = await _password(tessera.http, page)
    tokens = await _redeem(tessera, app, await _code(tessera.http, asked, codes[0].lower()),
                           verifier)
    assert claims_of(tokens["access_token"])["acr"] == "urn:tessera:acr:mfa"
    assert len(await audit_rows(identity, events.RECOVERY_CODE_USED)) == 1
    tessera.http.cookies.clear()
    page, _ = await _start(tessera, app)
    asked = await _password(tessera.http, page)
    again = await _code(tessera.http, asked, codes[0])
    assert again.status_code == 401 and "recovery code" in again.text


async def test_new_recovery_codes_and_turning_off_need_a_fresh_second_factor(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await _signed_in(tessera)
    secret, codes = await _enrol(tessera, clock)
    clock.advance(30)
    manage = await tessera.http.get("/account/totp")
    fields = form_fields(manage.text)
    renew = fields | {"step": "recovery_codes"}
    refused = await tessera.http.post("/account/totp", data=renew | {"totp_code": codes[1]})
    assert refused.status_code == 400  # renewing needs the app, not a code it replaces
    renewed = await tessera.http.post("/account/totp", data=renew | {
        "totp_code": pyotp.TOTP(secret).at(int(clock.now()))})
    fresh_codes = _codes(renewed)
    assert renewed.status_code == 200 and len(fresh_codes) == len(codes)
    assert not set(fresh_codes) & set(codes)

    off = fields | {"step": "disable"}
    wrong = await tessera.http.post("/account/totp", data=off | {"totp_code": "000000"
                                    if pyotp.TOTP(secret).at(int(clock.now())) != "000000"
                                    else "111111"})
    assert wrong.status_code == 400
    old_code = await tessera.http.post("/account/totp", data=off | {"totp_code": codes[2]})
    assert old_code.status_code == 400  # replaced codes no longer work
    done = await tessera.http.post("/account/totp", data=off | {"totp_code": fresh_codes[0]})
    assert done.status_code == 200 and "is off" in done.text
    assert not await identity.totp.enrolled(claims_of(
        (await tessera.login_tokens(app))["access_token"])["sub"])
    assert len(await audit_rows(identity, events.FACTOR_DISABLED)) == 1
    tessera.http.cookies.clear()
    page, _ = await _start(tessera, app)
    signed_in = await _password(tessera.http, page)
    assert _query(signed_in)["code"]  # the password alone again


async def test_management_forms_need_the_session_bound_csrf_token(
        tessera: TesseraDriver, clock: FixedClock) -> None:
    app = await _signed_in(tessera)
    secret, _ = await _enrol(tessera, clock)
    clock.advance(30)
    mine = form_fields((await tessera.http.get("/account/totp")).text)["csrf_token"]
    # the same user's other browser (another session): this browser's token is no good
    tessera.http.cookies.clear()
    page, _ = await _start(tessera, app)
    asked = await _password(tessera.http, page)
    await _code(tessera.http, asked, pyotp.TOTP(secret).at(int(clock.now())))
    clock.advance(30)
    code = pyotp.TOTP(secret).at(int(clock.now()))
    for token in (mine, "", "0" * 64):
        forged = await tessera.http.post("/account/totp", data={
            "step": "disable", "csrf_token": token, "totp_code": code})
        assert forged.status_code == 400 and "expired" in forged.text
    theirs = form_fields((await tessera.http.get("/account/totp")).text)["csrf_token"]
    assert theirs != mine
    done = await tessera.http.post("/account/totp", data={
        "step": "disable", "csrf_token": theirs, "totp_code": code})
    assert done.status_code == 200 and "is off" in done.text


@pytest.fixture
async def secure(tmp_path: Path, sqlite_store: SqlStore, clock: FixedClock
                 ) -> AsyncIterator[TesseraDriver]:
    """The service behind an https issuer: ``__Host-`` + ``Secure`` cookies."""
    identity = await make_identity(make_settings(tmp_path, issuer=SECURE_ISSUER),
                                   sqlite_store, clock)
    transport = httpx.ASGITransport(app=build_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=SECURE_ISSUER) as http:
        yield TesseraDriver(identity, http)
    await identity.audit.aclose()


async def test_behind_https_the_pages_use_the_host_cookie_and_refuse_other_origins(
        secure: TesseraDriver) -> None:
    await _signed_in(secure)
    assert "__Host-tessera_session" in secure.http.cookies
    overview = await secure.http.get("/account")
    assert overview.status_code == 200 and "alice" in overview.text
    fields = form_fields((await secure.http.get("/account/password")).text) | {
        "current_password": PASSWORD, "new_password": "a new long secret",
        "confirm_password": "a new long secret"}
    for headers in ({"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"},
                    {"origin": "https://evil.tessera.test"}):
        refused = await secure.http.post("/account/password", data=fields, headers=headers)
        assert refused.status_code == 400 and "expired" in refused.text
    done = await secure.http.post("/account/password", data=fields,
                                  headers={"sec-fetch-site": "same-origin"})
    assert done.status_code == 200 and "Password changed" in done.text
    renewed = done.headers.get_list("set-cookie")
    assert any(c.startswith("__Host-tessera_session=") and "Secure" in c for c in renewed)
    assert not any(c.startswith("tessera_session=") for c in renewed)
