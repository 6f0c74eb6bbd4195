"""Login sessions with real bounds (issue 13, item 2): idle and absolute timeouts enforced
at every use of the session cookie (``/authorize`` with ``prompt=none``, ``/account``),
per-tenant policies over the global defaults, the per-user session limit (``refuse`` with
a clear page, or ``end_oldest`` through the outbox), and the user's own sessions page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tessera.application.admin import AdminError
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationKind
from tessera.identity import session_policy
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.observability import events
from tessera.store.sql import SqlStore
from tests.conftest import ISSUER, make_identity, make_settings
from tests.e2e.helpers import audit_rows, claims_of, last_seq, published_kinds, refresh
from tests.e2e.test_step_up import _start
from tests.support import TesseraDriver

PASSWORD = "correct horse battery"


async def _sid(identity: Identity, http: httpx.AsyncClient) -> str | None:
    """The sid the browser's session cookie names (None: signed out)."""
    session = await identity.login.session_for_cookie(http.cookies.get("tessera_session"))
    return session.sid if session else None


async def _browser(identity: Identity, user_agent: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(identity), client=("198.51.100.9", 4242))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER,
                                 headers={"user-agent": user_agent}) as client:
        yield client


async def _session_row_ids(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr data-sid="([^"]+)"', page.text)


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'name=csrf_token value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


# -- timeouts -----------------------------------------------------------------------------

async def test_idle_timeout_ends_the_session_at_its_next_use(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await session_policy.set_session_policy(identity, "default", idle_timeout="30m")
    tokens = await tessera.login_tokens(app)
    sid = claims_of(tokens["access_token"])["sid"]

    clock.advance(29 * 60)  # used in time: the idle clock starts again
    assert (await tessera.http.get("/account")).status_code == 200
    clock.advance(29 * 60)
    assert (await tessera.http.get("/account")).status_code == 200

    seq = await last_seq(identity)
    clock.advance(31 * 60)
    page = await tessera.http.get("/account")
    assert page.status_code == 401 and "Sign in" in page.text
    assert (RevocationKind.SESSION_REVOKED, sid) in await published_kinds(identity, seq)
    async with identity.store.unit_of_work(read_only=True) as uow:
        session = await uow.sessions.get(sid)
    assert session is not None and session.revoke_reason == "idle_timeout"
    assert (await refresh(tessera, app, tokens["refresh_token"])).json()["error"] == \
        "invalid_grant"
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is False


async def test_prompt_none_after_the_idle_timeout_is_login_required(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await session_policy.set_session_policy(identity, "default", idle_timeout="10m")
    await tessera.login_tokens(app)
    silent, _ = await _start(tessera, app, prompt="none")
    assert silent.status_code == 303 and "code=" in silent.headers["location"]
    clock.advance(11 * 60)
    silent, _ = await _start(tessera, app, prompt="none")
    assert silent.status_code == 303
    assert "error=login_required" in silent.headers["location"]


async def test_absolute_timeout_ends_a_session_however_much_it_is_used(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await session_policy.set_session_policy(identity, "default", idle_timeout="1h",
                                            absolute_timeout="2h")
    await tessera.login_tokens(app)
    sid = await _sid(identity, tessera.http)
    for _ in range(3):
        clock.advance(35 * 60)
        assert (await tessera.http.get("/account")).status_code == 200
    clock.advance(20 * 60)  # 2h05 after sign-in, 20 min after the last use
    assert (await tessera.http.get("/account")).status_code == 401
    async with identity.store.unit_of_work(read_only=True) as uow:
        session = await uow.sessions.get(sid or "")
    assert session is not None and session.revoke_reason == "absolute_timeout"


async def test_global_defaults_apply_and_a_tenant_overrides_them(
        tmp_path: Path, sqlite_store: SqlStore, clock: FixedClock) -> None:
    settings = make_settings(tmp_path, sessions={"idle_timeout": 600, "max_sessions": 3})
    identity = await make_identity(settings, sqlite_store, clock)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                                     base_url=ISSUER) as http:
            tessera = TesseraDriver(identity, http)
            app = await tessera.web_client()
            await tessera.user()
            await tessera.login_tokens(app)
            clock.advance(601)
            assert (await http.get("/account")).status_code == 401  # the global default
            shown = await session_policy.show_session_policy(identity, "default")
            assert shown["idle_timeout"] is None
            assert shown["effective"] == {"idle_timeout": 600.0, "absolute_timeout": 0.0,
                                          "max_sessions": 3, "on_limit": "refuse"}
            changed = await session_policy.set_session_policy(identity, "default",
                                                              idle_timeout="0")
            assert changed["effective"]["idle_timeout"] == 0.0  # type: ignore[index]
            assert changed["effective"]["max_sessions"] == 3  # type: ignore[index]
            http.cookies.clear()
            await tessera.login_tokens(app)
            clock.advance(86400)
            assert (await http.get("/account")).status_code == 200  # no idle bound
            back = await session_policy.set_session_policy(identity, "default",
                                                           idle_timeout="default")
            assert back["effective"]["idle_timeout"] == 600.0  # type: ignore[index]
    finally:
        await identity.audit.aclose()


async def test_bad_policy_input_is_refused(identity: Identity) -> None:
    for kwargs in ({"idle_timeout": "soon"}, {"idle_timeout": "-5m"},
                   {"absolute_timeout": "12y"}, {"max_sessions": "-1"},
                   {"max_sessions": "many"}, {"on_limit": "panic"}):
        with pytest.raises(AdminError):
            await session_policy.set_session_policy(identity, "default", **kwargs)
    with pytest.raises(AdminError, match="no tenant"):
        await session_policy.set_session_policy(identity, "nowhere", idle_timeout="1h")
    assert [r.fields for r in await audit_rows(identity, events.SESSION_POLICY_CHANGED)] == []


# -- concurrent sessions ------------------------------------------------------------------

async def test_at_the_limit_refuse_shows_a_clear_page(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await session_policy.set_session_policy(identity, "default", max_sessions="2",
                                            on_limit="refuse")
    for _ in range(2):
        tessera.http.cookies.clear()
        await tessera.login_tokens(app)
    tessera.http.cookies.clear()
    page, _ = await _start(tessera, app)
    done = await tessera.http.post("/authorize", data=dict(re.findall(
        r"name='([^']+)' value='([^']*)'", page.text)) | {"username": "alice",
                                                         "password": PASSWORD})
    assert done.status_code == 403 and "Too many sessions" in done.text, done.text
    assert "tessera_session" not in done.cookies
    async with identity.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_username("default", "alice")
        assert user is not None
        assert len(await uow.sessions.active_for_user(user.user_id)) == 2


async def test_at_the_limit_end_oldest_revokes_it_through_the_outbox(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await session_policy.set_session_policy(identity, "default", max_sessions="2",
                                            on_limit="end_oldest")
    logins = []
    for _ in range(2):
        tessera.http.cookies.clear()
        logins.append(await tessera.login_tokens(app))
        clock.advance(1)
    oldest = claims_of(logins[0]["access_token"])["sid"]
    seq = await last_seq(identity)
    tessera.http.cookies.clear()
    newest = await tessera.login_tokens(app)
    assert (RevocationKind.SESSION_REVOKED, oldest) in await published_kinds(identity, seq)
    assert (await tessera.introspect(app, logins[0]["access_token"]))["active"] is False
    assert (await tessera.introspect(app, logins[1]["access_token"]))["active"] is True
    assert (await tessera.introspect(app, newest["access_token"]))["active"] is True
    reasons = [r.fields.get("reason") for r in await audit_rows(identity, events.SESSION_REVOKED)]
    assert reasons == ["session_limit"]


async def test_reauthentication_in_the_same_session_does_not_count(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await session_policy.set_session_policy(identity, "default", max_sessions="1")
    await tessera.login_tokens(app)
    again, _ = await _start(tessera, app, prompt="login")
    assert again.status_code == 200
    await tessera.login_tokens(app, extra={"prompt": "login"})


# -- my sessions --------------------------------------------------------------------------

async def test_my_sessions_lists_devices_and_ends_one_through_the_outbox(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await tessera.user("bob")
    phone: list[dict[str, str]] = []
    async for other in _browser(identity, "PhoneBrowser/1.0"):
        phone.append(await TesseraDriver(identity, other).login_tokens(app))
    other_user: list[str] = []
    async for bobs in _browser(identity, "BobBrowser/2.0"):
        tokens = await TesseraDriver(identity, bobs).login_tokens(app, username="bob")
        other_user.append(claims_of(tokens["access_token"])["sid"])
    here = await tessera.login_tokens(app)
    phone_sid = claims_of(phone[0]["access_token"])["sid"]
    here_sid = claims_of(here["access_token"])["sid"]

    page = await tessera.http.get("/account/sessions")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert await _session_row_ids(page) == [here_sid, phone_sid]  # this browser first
    assert "PhoneBrowser/1.0" in page.text and "198.51.100.9" in page.text
    assert "(this browser)" in page.text and "BobBrowser" not in page.text
    csrf = _csrf(page)

    forged = await tessera.http.post("/account/sessions", data={"sid": phone_sid})
    assert forged.status_code == 400
    cross = await tessera.http.post("/account/sessions", data={"sid": phone_sid,
                                                               "csrf_token": csrf},
                                    headers={"origin": "https://evil.example"})
    assert cross.status_code == 400
    theirs = await tessera.http.post("/account/sessions", data={"sid": other_user[0],
                                                                "csrf_token": csrf})
    assert theirs.status_code == 404
    for junk in ("", "x" * 500, "nope"):
        assert (await tessera.http.post("/account/sessions", data={
            "sid": junk, "csrf_token": csrf})).status_code == 404
    async with identity.store.unit_of_work(read_only=True) as uow:
        bob_session = await uow.sessions.get(other_user[0])
    assert bob_session is not None and bob_session.active

    seq = await last_seq(identity)
    ended = await tessera.http.post("/account/sessions", data={"sid": phone_sid,
                                                               "csrf_token": csrf})
    assert ended.status_code == 200 and "was ended" in ended.text
    assert await _session_row_ids(ended) == [here_sid]
    assert (RevocationKind.SESSION_REVOKED, phone_sid) in await published_kinds(identity, seq)
    assert (await tessera.introspect(app, phone[0]["access_token"]))["active"] is False
    assert (await refresh(tessera, app, phone[0]["refresh_token"])).json()["error"] == \
        "invalid_grant"
    again = await tessera.http.post("/account/sessions", data={"sid": phone_sid,
                                                               "csrf_token": csrf})
    assert again.status_code == 404

    out = await tessera.http.post("/account/sessions", data={"sid": here_sid,
                                                             "csrf_token": csrf})
    assert out.status_code == 200 and "Signed out" in out.text
    assert (await tessera.http.get("/account/sessions")).status_code == 401


async def test_my_sessions_needs_a_session(tessera: TesseraDriver) -> None:
    assert (await tessera.http.get("/account/sessions")).status_code == 401
    assert (await tessera.http.post("/account/sessions", data={"sid": "x"})).status_code \
        == 401


async def test_the_bounds_hold_for_the_apps_of_a_session_too(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await session_policy.set_session_policy(identity, "default", idle_timeout="10m",
                                            absolute_timeout="1h")
    tokens = await tessera.login_tokens(app)
    sid = claims_of(tokens["access_token"])["sid"]
    for _ in range(5):  # refreshing is using the session: it is not idle
        clock.advance(9 * 60)
        answer = await refresh(tessera, app, tokens["refresh_token"])
        assert answer.status_code == 200, answer.text
        tokens = answer.json()
    seq = await last_seq(identity)
    clock.advance(16 * 60)  # 61 min after sign-in
    late = await refresh(tessera, app, tokens["refresh_token"])
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert (RevocationKind.SESSION_REVOKED, sid) in await published_kinds(identity, seq)
    async with identity.store.unit_of_work(read_only=True) as uow:
        session = await uow.sessions.get(sid)
    assert session is not None and session.revoke_reason == "absolute_timeout"


async def test_a_short_idle_timeout_is_kept_alive_by_use(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    """Uses closer together than the idle timeout keep the session, even when the
    timeout is shorter than ``sessions.touch_interval``."""
    app = await tessera.web_client()
    await tessera.user()
    await session_policy.set_session_policy(identity, "default", idle_timeout="8s")
    await tessera.login_tokens(app)
    for _ in range(10):
        clock.advance(5)
        assert (await tessera.http.get("/account")).status_code == 200
    clock.advance(9)
    assert (await tessera.http.get("/account")).status_code == 401
