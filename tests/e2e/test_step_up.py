"""Step-up authentication, end to end: TOTP enrolment at /account/totp, the code step of
the login page (wrong, replayed, throttled codes), and ``acr_values``/``max_age`` at
/authorize re-authenticating in the same session (RFC 9470 §4, OIDC Core §3.1.2.1)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp

from tessera.core.acr import ACR_MFA, ACR_PASSWORD
from tessera.core.clock import FixedClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.identity.login.totp import TOTP
from tessera.observability import events
from tests.conftest import ISSUER
from tests.e2e.helpers import audit_rows, claims_of, form_fields, refresh
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair

PASSWORD = "correct horse battery"
MFA_AMR = ["pwd", "otp"]


def _params(app: AppClient, challenge: str, **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
            "scope": "openid api:read", "state": "s-123", "code_challenge": challenge,
            "code_challenge_method": "S256", **extra}


async def _start(tessera: TesseraDriver, app: AppClient, **extra: str
                 ) -> tuple[httpx.Response, str]:
    """GET /authorize; returns the answer and the PKCE verifier."""
    verifier, challenge = pkce_pair()
    return await tessera.http.get("/authorize", params=_params(app, challenge, **extra)), verifier


async def _password(http: httpx.AsyncClient, page: httpx.Response, *,
                    username: str = "alice", password: str = PASSWORD) -> httpx.Response:
    assert page.status_code == 200 and "Sign in" in page.text, page.text
    return await http.post("/authorize", data=form_fields(page.text)
                           | {"username": username, "password": password})


async def _code(http: httpx.AsyncClient, page: httpx.Response, code: str) -> httpx.Response:
    assert "Two-step verification" in page.text, page.text
    return await http.post("/authorize", data=form_fields(page.text) | {"totp_code": code})


def _query(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)


async def _redeem(tessera: TesseraDriver, app: AppClient, done: httpx.Response,
                  verifier: str) -> dict[str, Any]:
    response = await tessera.token(app, grant_type="authorization_code",
                                   code=_query(done)["code"][0], redirect_uri=REDIRECT,
                                   code_verifier=verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _now_code(secret: str, clock: FixedClock) -> str:
    return pyotp.TOTP(secret).at(int(clock.now()))


async def _provision(identity: Identity, username: str = "alice") -> str:
    """Enrol like ``tessera users totp-enrol`` does; returns the secret."""
    async with identity.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_username("default", username)
    assert user is not None
    return (await identity.totp.provision(user, actor="test")).secret


async def _mfa_login(tessera: TesseraDriver, app: AppClient, secret: str,
                     clock: FixedClock, **extra: str) -> dict[str, Any]:
    page, verifier = await _start(tessera, app, **extra)
    asked = await _password(tessera.http, page)
    done = await _code(tessera.http, asked, _now_code(secret, clock))
    return await _redeem(tessera, app, done, verifier)


# -- enrolment --------------------------------------------------------------------------


async def test_enrolment_on_the_account_page_then_login_asks_for_a_code(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    first = await tessera.login_tokens(app)
    assert claims_of(first["access_token"])["acr"] == ACR_PASSWORD

    page = await tessera.http.get("/account/totp")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    found = re.search(r"<code id=totp_secret>([A-Z2-7]+)</code>", page.text)
    uri = re.search(r"<code id=totp_uri>([^<]+)</code>", page.text)
    assert found and uri
    secret = found.group(1)
    assert len(secret) == 32  # 160 bits
    parsed = pyotp.parse_uri(unescape(uri.group(1)))
    assert isinstance(parsed, pyotp.TOTP) and parsed.secret == secret
    assert parsed.name == "alice" and parsed.issuer == urlsplit(ISSUER).netloc
    again = await tessera.http.get("/account/totp")
    assert secret in again.text  # the pending secret stays until confirmed

    bad = f"{(int(_now_code(secret, clock)) + 1) % 1_000_000:06d}"
    wrong = await tessera.http.post("/account/totp",
                                    data=form_fields(page.text) | {"totp_code": bad})
    assert wrong.status_code == 400 and "not right" in wrong.text
    assert not await identity.totp.enrolled(await _user_id(identity))
    done = await tessera.http.post("/account/totp", data=form_fields(page.text)
                                   | {"totp_code": _now_code(secret, clock)})
    assert done.status_code == 200 and "is on" in done.text
    shown = await tessera.http.get("/account/totp")
    assert "is on" in shown.text and secret not in shown.text
    assert [r.fields["by"] for r in await audit_rows(identity, events.FACTOR_ENROLLED)] == \
        ["user"]

    clock.advance(30)  # the enrolment code's time step is used up
    tessera.http.cookies.clear()  # another browser
    page, verifier = await _start(tessera, app)
    asked = await _password(tessera.http, page)
    assert asked.status_code == 200 and "Two-step verification" in asked.text
    assert PASSWORD not in asked.text and "password" not in form_fields(asked.text)
    assert "pending" in form_fields(asked.text)
    assert len(await audit_rows(identity, events.SESSION_CREATED)) == 1  # not yet
    tokens = await _redeem(tessera, app, await _code(tessera.http, asked,
                                                     _now_code(secret, clock)), verifier)
    for token in (tokens["access_token"], tokens["id_token"]):
        claims = claims_of(token)
        assert claims["acr"] == ACR_MFA and claims["amr"] == MFA_AMR
    assert claims_of(tokens["access_token"])["sid"] != claims_of(first["access_token"])["sid"]


async def _user_id(identity: Identity, username: str = "alice") -> str:
    async with identity.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_username("default", username)
    assert user is not None
    return user.user_id


async def test_enrolment_needs_a_browser_session_and_the_csrf_token(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    nobody = await tessera.http.get("/account/totp")
    assert nobody.status_code == 401 and "Sign in" in nobody.text
    app = await tessera.web_client()
    await tessera.user()
    await tessera.login_tokens(app)
    page = await tessera.http.get("/account/totp")
    secret = re.findall(r"<code id=totp_secret>([A-Z2-7]+)</code>", page.text)[0]
    forged = await tessera.http.post("/account/totp",
                                     data={"totp_code": _now_code(secret, clock)})
    assert forged.status_code == 400 and "expired" in forged.text
    assert not await identity.totp.enrolled(await _user_id(identity))


async def test_the_secret_is_sealed_at_rest(tessera: TesseraDriver, identity: Identity) -> None:
    await tessera.user()
    secret = await _provision(identity)
    user_id = await _user_id(identity)
    async with identity.store.unit_of_work(read_only=True) as uow:
        row = await uow.factors.get(user_id, TOTP)
    assert row is not None and row.confirmed_at is not None
    assert row.sealed_secret.startswith("v1.") and secret not in row.sealed_secret


# -- the code step ----------------------------------------------------------------------


async def test_wrong_and_replayed_codes_are_refused(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    secret = await _provision(identity)
    page, verifier = await _start(tessera, app)
    asked = await _password(tessera.http, page)
    good = _now_code(secret, clock)
    wrong = await _code(tessera.http, asked, f"{(int(good) + 1) % 1_000_000:06d}")
    assert wrong.status_code == 401 and "not right" in wrong.text
    assert not await audit_rows(identity, events.SESSION_CREATED)
    done = await _code(tessera.http, wrong, good)  # the form comes back, still pending
    await _redeem(tessera, app, done, verifier)

    tessera.http.cookies.clear()
    page, _ = await _start(tessera, app)
    replay = await _code(tessera.http, await _password(tessera.http, page), good)
    assert replay.status_code == 401 and "used already" in replay.text
    reasons = [r.fields["reason"] for r in await audit_rows(identity, events.LOGIN_FAILED)]
    assert sorted(reasons) == ["bad_code", "replayed_code"]
    clock.advance(30)
    assert (await _code(tessera.http, replay, _now_code(secret, clock))).status_code == 303


async def test_codes_of_the_neighbouring_time_steps_are_accepted(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    secret = await _provision(identity)
    totp = pyotp.TOTP(secret)
    now = int(clock.now())
    for offset, accepted in ((-60, False), (-30, True), (30, True), (60, False)):
        tessera.http.cookies.clear()
        page, _ = await _start(tessera, app)
        answer = await _code(tessera.http, await _password(tessera.http, page),
                             totp.at(now + offset))
        assert (answer.status_code == 303) is accepted, offset
    # -30 was accepted before +30; a code older than the last accepted one is a replay
    tessera.http.cookies.clear()
    page, _ = await _start(tessera, app)
    late = await _code(tessera.http, await _password(tessera.http, page), totp.at(now))
    assert late.status_code == 401 and "used already" in late.text


async def test_wrong_codes_are_throttled_per_user(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    secret = await _provision(identity)
    page, _ = await _start(tessera, app)
    form = await _password(tessera.http, page)
    good = _now_code(secret, clock)
    bad = f"{(int(good) + 7) % 1_000_000:06d}"
    limit = identity.settings.security.totp_failures_per_minute
    for _ in range(limit):
        form = await _code(tessera.http, form, bad)
        assert form.status_code == 401
    throttled = await _code(tessera.http, form, good)  # even the right code
    assert throttled.status_code == 429 and "Too many" in throttled.text
    # the count is the user's: a new login from elsewhere is refused a code just the same
    page, _ = await _start(tessera, app)
    elsewhere = await _code(tessera.http, await _password(tessera.http, page), good)
    assert elsewhere.status_code == 429 and "Too many" in elsewhere.text


async def test_a_forged_expired_or_foreign_pending_login_is_refused(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await tessera.user("mallory")
    secret = await _provision(identity)
    page, _ = await _start(tessera, app)
    asked = await _password(tessera.http, page)
    fields = form_fields(asked.text)
    payload, signed = fields["pending"].split(".", 1)
    forged = await tessera.http.post("/authorize", data=fields | {
        "pending": f"{payload}x.{signed}", "totp_code": _now_code(secret, clock)})
    assert forged.status_code == 400 and "expired" in forged.text

    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                              base_url=ISSUER)
    async with other:  # another browser: its own CSRF cookie, so the record is not its own
        their_page = await other.get("/authorize", params=_params(app, pkce_pair()[1]))
        theirs = form_fields(their_page.text)
        stolen = await other.post("/authorize", data=fields | {
            "csrf_token": theirs["csrf_token"], "totp_code": _now_code(secret, clock)})
        assert stolen.status_code == 400 and "expired" in stolen.text

    clock.advance(301)
    late = await tessera.http.post("/authorize", data=fields | {
        "totp_code": _now_code(secret, clock)})
    assert late.status_code == 400 and "expired" in late.text
    assert not await audit_rows(identity, events.SESSION_CREATED)


# -- authorize: acr_values and max_age --------------------------------------------------


async def test_acr_values_mfa_steps_up_in_the_same_session(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    first = await tessera.login_tokens(app)
    before = claims_of(first["access_token"])
    assert before["acr"] == ACR_PASSWORD and before["amr"] == ["pwd"]
    secret = await _provision(identity)
    clock.advance(45)

    page, verifier = await _start(tessera, app, acr_values=ACR_MFA)
    assert page.status_code == 200 and "Sign in" in page.text  # not a code: step up
    [noted] = await audit_rows(identity, events.AUTH_STEP_UP_REQUIRED)
    assert noted.fields["sid"] == before["sid"]
    assert noted.fields["required_acr"] == ACR_MFA
    assert form_fields(page.text)["acr_values"] == ACR_MFA
    asked = await _password(tessera.http, page)
    stepped = await _redeem(tessera, app, await _code(tessera.http, asked,
                                                      _now_code(secret, clock)), verifier)

    seen = await tessera.introspect(app, stepped["access_token"])
    assert seen["active"] and seen["sid"] == before["sid"] and seen["sv"] == before["sv"]
    assert seen["acr"] == ACR_MFA and "otp" in seen["amr"]
    assert seen["auth_time"] == before["auth_time"] + 45
    assert claims_of(stepped["id_token"])["acr"] == ACR_MFA
    assert len(await audit_rows(identity, events.SESSION_CREATED)) == 1
    assert len(await audit_rows(identity, events.SESSION_REAUTHENTICATED)) == 1

    # the refresh family of the first login keeps working, now at the stronger level
    renewed = await refresh(tessera, app, first["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    claims = claims_of(renewed.json()["access_token"])
    assert (claims["sid"], claims["acr"], claims["amr"]) == (before["sid"], ACR_MFA, MFA_AMR)
    assert (await tessera.introspect(app, first["access_token"]))["active"]  # sv unchanged

    # the session now satisfies mfa: no login for the next request
    again, _ = await _start(tessera, app, acr_values=ACR_MFA)
    assert "code" in _query(again)


async def test_step_up_is_refused_for_a_user_without_a_second_factor(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await tessera.login_tokens(app)
    page, _ = await _start(tessera, app, acr_values=ACR_MFA)
    query = _query(await _password(tessera.http, page))
    assert query["error"] == ["unmet_authentication_requirements"]
    assert query["state"] == ["s-123"] and "code" not in query
    silent, _ = await _start(tessera, app, acr_values=ACR_MFA, prompt="none")
    assert _query(silent)["error"] == ["login_required"]
    unknown, _ = await _start(tessera, app, acr_values="urn:example:acr:gold")
    assert "code" in _query(unknown)  # voluntary and unknown: ignored
    weaker, _ = await _start(tessera, app, acr_values=ACR_PASSWORD)
    assert "code" in _query(weaker)


async def test_max_age_zero_reauthenticates_in_the_same_session(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    first = await tessera.login_tokens(app)
    old_cookie = tessera.http.cookies["tessera_session"]
    clock.advance(100)
    page, verifier = await _start(tessera, app, max_age="0")
    again = await _redeem(tessera, app, await _password(tessera.http, page), verifier)
    before, after = claims_of(first["id_token"]), claims_of(again["id_token"])
    assert after["sid"] == before["sid"] and after["auth_time"] == before["auth_time"] + 100
    assert tessera.http.cookies["tessera_session"] != old_cookie  # the cookie is renewed
    tessera.http.cookies.clear()
    tessera.http.cookies.set("tessera_session", old_cookie)
    stale, _ = await _start(tessera, app)
    assert stale.status_code == 200 and "Sign in" in stale.text


async def test_an_enrolled_user_is_asked_for_a_code_on_max_age_too(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    secret = await _provision(identity)
    first = await _mfa_login(tessera, app, secret, clock)
    clock.advance(30)
    again = await _mfa_login(tessera, app, secret, clock, max_age="10")
    assert claims_of(again["access_token"])["sid"] == claims_of(first["access_token"])["sid"]
    assert claims_of(again["access_token"])["acr"] == ACR_MFA


async def test_discovery_lists_the_acr_values(tessera: TesseraDriver) -> None:
    meta = (await tessera.http.get("/.well-known/openid-configuration")).json()
    assert meta["acr_values_supported"] == [ACR_PASSWORD, ACR_MFA]


# -- CLI ----------------------------------------------------------------------------------


def _cli(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TESSERA_DATA_DIR": str(data), "TESSERA_ISSUER": "http://t.test"}
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_cli_totp_enrol_prints_the_otpauth_uri(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert _cli(data, "users", "create", "--username", "bob", "--password-stdin",
                stdin="a long password\n").returncode == 0
    done = _cli(data, "users", "totp-enrol", "--username", "bob")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    parsed = pyotp.parse_uri(out["otpauth_uri"])
    assert isinstance(parsed, pyotp.TOTP) and parsed.secret == out["secret"]
    assert parsed.name == "bob" and parsed.issuer == "t.test"
    missing = _cli(data, "users", "totp-enrol", "--username", "nobody")
    assert missing.returncode == 2 and "no user" in missing.stderr
