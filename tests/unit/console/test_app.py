"""Console pages: sessions, revocation with confirmation (through the outbox), the audit
timeline, CSRF on every state-changing form, escaping, headers, and unmounting."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from tessera.application import admin
from tessera.console.html import when
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationKind
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.observability import events
from tests.conftest import ISSUER
from tests.tokens import claims_of
from tests.unit.console.conftest import ConsoleDriver, csrf_of


def _sid(tokens: dict[str, str]) -> str:
    return str(claims_of(tokens["access_token"])["sid"])


async def _outbox(identity: Identity) -> list[tuple[str, str]]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        return [(e.kind, e.key) for e in await uow.revocations.since(0, limit=1000)]


async def test_pages_carry_strict_security_headers(console: ConsoleDriver) -> None:
    await console.admin()
    for path in ("/console/login", "/console/sessions", "/console/audit", "/console/journey"):
        response = await console.http.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "form-action 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-type"].startswith("text/html")
        assert not re.search(r"(src|href)=['\"]?https?:", response.text), path


async def test_sessions_list_shows_device_client_times_and_acr(
        console: ConsoleDriver) -> None:
    app, tokens = await console.user_session("alice")
    refreshed = await console.tessera.token(app, grant_type="refresh_token",
                                            refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200
    await console.admin()
    page = await console.http.get("/console/sessions", params={"username": "ali"})
    assert page.status_code == 200
    sid = _sid(tokens)
    assert "alice" in page.text and sid in page.text and "test app" in page.text
    assert "python-httpx" in page.text and "urn:tessera:acr:pwd" in page.text
    assert "root" not in page.text.split("<table>")[1]  # filtered to alice
    detail = await console.http.get(f"/console/sessions/{sid}")
    assert detail.status_code == 200
    assert app.client_id in detail.text and "Refresh families" in detail.text
    assert "Revoke family" in detail.text and "Revoke this session" in detail.text
    refreshed_at = when(console.identity.clock.now())
    assert f"<dt>Last refresh</dt><dd>{refreshed_at}</dd>" in detail.text
    by_tenant = await console.http.get("/console/sessions", params={"tenant": "default"})
    assert sid in by_tenant.text and "Revoke tenant default" in by_tenant.text
    assert "No sessions match" in (await console.http.get(
        "/console/sessions", params={"tenant": "nowhere"})).text
    assert (await console.http.get("/console/sessions/nope")).status_code == 404


async def test_sessions_are_paged(console: ConsoleDriver, identity: Identity) -> None:
    await console.admin()
    user = await admin.create_user(identity.admin, username="many", password="long password")
    for _ in range(6):
        await identity.login.open_session(user, user_agent="device")
    first = await console.http.get("/console/sessions", params={"username": "many"})
    assert first.text.count("device</span>") == 5 and "Older →" in first.text
    second = await console.http.get("/console/sessions",
                                    params={"username": "many", "page": "1"})
    assert second.text.count("device</span>") == 1 and "← Newer" in second.text


async def test_revoking_a_session_asks_first_then_goes_through_the_outbox(
        console: ConsoleDriver, identity: Identity) -> None:
    app, tokens = await console.user_session("alice")
    sid = _sid(tokens)
    root_id = await console.admin()
    confirm = await console.revoke("session", sid, confirm=False)
    assert f"Revoke session {sid} of alice?" in confirm.text
    assert (await console.session(sid)).active  # nothing happened yet
    done = await console.revoke("session", sid)
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/sessions/{sid}?done=session&n=1"
    page = await console.http.get(done.headers["location"])
    assert "Session revoked." in page.text and "revoked" in page.text
    assert not (await console.session(sid)).active
    assert (RevocationKind.SESSION_REVOKED, sid) in await _outbox(identity)
    async with identity.store.unit_of_work(read_only=True) as uow:
        (row,) = await uow.audit.query(event=events.SESSION_REVOKED)
    assert row.fields["actor"] == root_id and row.fields["reason"] == "console"
    assert await console.tessera.introspect(app, tokens["access_token"]) == {"active": False}
    again = await console.revoke("session", sid)
    assert again.headers["location"].endswith("done=session&n=0")


async def test_revoking_a_family_keeps_the_session(console: ConsoleDriver,
                                                   identity: Identity) -> None:
    app, tokens = await console.user_session("alice")
    sid = _sid(tokens)
    async with identity.store.unit_of_work(read_only=True) as uow:
        (family,) = await uow.refresh.families_for_session(sid)
    await console.admin()
    done = await console.revoke("family", family.family_id)
    assert done.headers["location"] == f"/console/sessions/{sid}?done=family&n=1"
    assert (await console.session(sid)).active
    assert (RevocationKind.FAMILY_REVOKED, family.family_id) in await _outbox(identity)
    refreshed = await console.tessera.token(app, grant_type="refresh_token",
                                            refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 400


async def test_revoking_a_user_and_a_tenant(console: ConsoleDriver,
                                            identity: Identity) -> None:
    _, first = await console.user_session("alice")
    app = await console.tessera.web_client()
    console.http.cookies.clear()
    second = await console.tessera.login_tokens(app, username="alice")
    console.http.cookies.clear()
    alice_id = str(claims_of(first["access_token"])["sub"])
    await console.admin()
    listing = await console.http.get("/console/sessions", params={"user_id": alice_id})
    assert "Sessions of alice" in listing.text and "Revoke every session of alice" in listing.text
    confirm = await console.revoke("user", alice_id, confirm=False)
    assert "2 active session(s) end" in confirm.text
    done = await console.revoke("user", alice_id)
    assert "done=user&n=2" in done.headers["location"]
    assert "Revoked 2 session(s) of the user." in (
        await console.http.get(done.headers["location"])).text
    for tokens in (first, second):
        assert not (await console.session(_sid(tokens))).active
    _, third = await console.user_session("bob")
    done = await console.revoke("tenant", "default")
    assert "done=tenant&n=" in done.headers["location"]
    assert not (await console.session(_sid(third))).active
    assert (RevocationKind.TENANT_REVOKED, "default") in await _outbox(identity)


async def test_every_state_changing_post_needs_the_csrf_token(
        console: ConsoleDriver, identity: Identity) -> None:
    _, tokens = await console.user_session("alice")
    sid = _sid(tokens)
    await console.admin()
    for data in ({"kind": "session", "target": sid, "confirm": "yes"},
                 {"kind": "session", "target": sid, "confirm": "yes", "csrf_token": "f" * 64}):
        response = await console.http.post("/console/revoke", data=data)
        assert response.status_code == 403 and "form expired" in response.text
    # a token minted for another browser (another CSRF cookie) does not fit this one
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                              base_url=ISSUER)
    async with other:
        foreign = csrf_of((await other.get("/console/login")).text)
    response = await console.http.post("/console/revoke", data={
        "kind": "session", "target": sid, "confirm": "yes", "csrf_token": foreign})
    assert response.status_code == 403
    logout = await console.http.post("/console/logout", data={"csrf_token": "x"})
    assert logout.status_code == 403
    assert (await console.session(sid)).active
    # every form that posts carries a token
    for path in ("/console/sessions", f"/console/sessions/{sid}"):
        html = (await console.http.get(path)).text
        forms = re.findall(r"<form[^>]*method=post[^>]*>.*?</form>", html)
        assert forms and all("name='csrf_token'" in f for f in forms), path


async def test_sign_out_ends_the_session(console: ConsoleDriver) -> None:
    await console.admin()
    response = await console.http.post("/console/logout",
                                       data={"csrf_token": await console.csrf()})
    assert response.status_code == 303 and response.headers["location"] == "/console/login"
    assert (await console.http.get("/console/sessions")).status_code == 303


async def test_values_are_escaped_everywhere(console: ConsoleDriver,
                                             identity: Identity) -> None:
    evil = "<script>alert(1)</script>'\""
    user = await admin.create_user(identity.admin, username=evil, password="long password")
    session, _ = await identity.login.open_session(user, user_agent=f"x'><img src=x>{evil}")
    await identity.audit.record(events.LOGIN_FAILED, user_id=evil, reason=evil,
                                correlation_id=evil)
    await console.admin()
    pages = [await console.http.get("/console/sessions"),
             await console.http.get(f"/console/sessions/{session.sid}"),
             await console.http.get("/console/sessions", params={"username": evil}),
             await console.http.get("/console/audit", params={"user_id": evil}),
             await console.http.get("/console/journey", params={"needle": evil})]
    for page in pages:
        assert page.status_code == 200
        assert "<script>" not in page.text and "<img" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#39;&#34;" in page.text, page.url
    confirm = await console.revoke("user", user.user_id, confirm=False)
    assert "<script>" not in confirm.text


async def test_audit_timeline_filters_and_pages(console: ConsoleDriver, identity: Identity,
                                                clock: FixedClock) -> None:
    await console.admin()
    for n in range(7):
        await identity.audit.record(events.TOKEN_ISSUED, user_id="s-1", tenant_id="t-1",
                                    client_id="c-1", jti=f"jti-{n}")
    clock.advance(600)  # within the console's max_auth_age
    await identity.audit.record(events.TOKEN_ISSUED, user_id="s-2", client_id="c-2", jti="late")
    page = await console.http.get("/console/audit", params={"event": "token.issued",
                                                            "user_id": "s-1"})
    assert page.status_code == 200
    shown = re.findall(r"jti</b>=(jti-\d)", page.text)
    assert shown == ["jti-6", "jti-5", "jti-4", "jti-3", "jti-2"]
    older = re.search(r"href='([^']*before=\d+[^']*)'", page.text)
    assert older, "no link to older rows"
    second = await console.http.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r"jti</b>=(jti-\d)", second.text) == ["jti-1", "jti-0"]
    assert "Older →" not in second.text
    assert "jti</b>=late" not in (await console.http.get("/console/audit", params={
        "tenant": "t-1", "client_id": "c-1"})).text
    cut = datetime.fromtimestamp(clock.now() - 60, UTC).strftime("%Y-%m-%dT%H:%M")
    recent = await console.http.get("/console/audit", params={"since": cut,
                                                              "event": "token.issued"})
    assert re.findall(r"jti</b>=([\w-]+)", recent.text) == ["late"]
    bad = await console.http.get("/console/audit", params={"since": "yesterday"})
    assert bad.status_code == 200 and "is not a date and time" in bad.text


async def test_unknown_revocations_are_refused(console: ConsoleDriver) -> None:
    await console.admin()
    csrf = await console.csrf()
    for data, status in (({"kind": "planet", "target": "x"}, 400),
                         ({"kind": "session"}, 400),
                         ({"kind": "session", "target": "nope"}, 404),
                         ({"kind": "family", "target": "nope", "confirm": "yes"}, 404),
                         ({"kind": "user", "target": "nope"}, 404)):
        response = await console.http.post("/console/revoke", data={**data, "csrf_token": csrf})
        assert response.status_code == status, data


async def test_a_disabled_console_has_no_routes(identity: Identity) -> None:
    identity.settings.console.enabled = False
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                                 base_url=ISSUER) as http:
        assert (await http.get("/console/login")).status_code == 404
        assert (await http.get("/console/sessions")).status_code == 404



async def test_a_revoked_session_shows_how_far_the_logout_reached(
        console: ConsoleDriver, identity: Identity, clock: FixedClock) -> None:
    _, tokens = await console.user_session("carol")
    sid = _sid(tokens)
    await console.admin()
    page = await console.http.get(f"/console/sessions/{sid}")
    assert "Logout completion" not in page.text  # not revoked: nothing to show
    await identity.completion.report("feed", "orders-1", "orders", 0, 0.1)
    await identity.completion.report("feed", "billing-1", "billing", 0, 0.1)
    await console.revoke("session", sid)
    async with identity.store.unit_of_work(read_only=True) as uow:
        seq = await uow.revocations.last_seq()
    await identity.completion.report("feed", "orders-1", "orders", seq, 0.1)
    page = await console.http.get(f"/console/sessions/{sid}")
    assert "Logout completion" in page.text
    assert "applied at 1/2 verifiers; not applied yet by billing-1" in page.text
    clock.advance(0.04)
    await identity.completion.report("feed", "billing-1", "billing", seq, 0.1)
    page = await console.http.get(f"/console/sessions/{sid}")
    assert "applied at 2/2 verifiers in 40 ms" in page.text


async def test_signals_page_shows_risk_detections_and_deliveries_of_the_tenant(
        console: ConsoleDriver, identity: Identity) -> None:
    from tessera.core.signals import Delivery

    await console.admin(role="tenant-admin")
    await identity.audit.record(events.RISK_DETECTED, detection="refresh_burst",
                                action="notify", user_id="u-mine", tenant_id="default",
                                address="198.51.100.0/24")
    await identity.audit.record(events.RISK_DETECTED, detection="refresh_burst",  # as an
                                action="revoke", subject="u-theirs", tenant="acme")  # older release
    now = identity.clock.now()
    async with identity.store.unit_of_work() as uow:
        await uow.signals.enqueue([Delivery(
            dedupe=f"d-{tenant}", channel="logout", target=f"client-{tenant}", mode="push",
            jti=f"j-{tenant}", token="t", event="backchannel-logout", tenant_id=tenant,
            user_id="u", created_at=now, next_at=now, expires_at=now + 60)
            for tenant in ("default", "acme")])
    page = await console.http.get("/console/signals")
    assert page.status_code == 200
    assert "u-mine" in page.text and "198.51.100.0/24" in page.text
    assert "client-default" in page.text
    assert "u-theirs" not in page.text and "client-acme" not in page.text  # other tenant


async def test_back_channel_logout_uri_is_set_from_the_console_within_the_tenant(
        console: ConsoleDriver, identity: Identity) -> None:
    await console.admin(role="tenant-admin")
    mine, _ = await admin.create_client(
        identity.admin, name="shop", grants=("authorization_code",),
        redirect_uris=("https://shop.example/cb",))
    theirs, _ = await admin.create_client(
        identity.admin, name="other", grants=("authorization_code",),
        redirect_uris=("https://o.example/cb",), tenant_id="acme")
    page = await console.http.get("/console/signals")
    csrf = csrf_of(page.text)
    saved = await console.http.post("/console/signals/logout-uri", data={
        "csrf_token": csrf, "client_id": mine.client_id, "uri": "https://shop.example/bcl",
        "session_required": "yes"})
    assert saved.status_code == 303, saved.text
    async with identity.store.unit_of_work(read_only=True) as uow:
        targets = await uow.signals.logout_targets([mine.client_id, theirs.client_id])
    assert [(t.uri, t.session_required) for t in targets.values()] == [
        ("https://shop.example/bcl", True)]
    other = await console.http.post("/console/signals/logout-uri", data={
        "csrf_token": csrf, "client_id": theirs.client_id, "uri": "https://o.example/bcl"})
    assert other.status_code == 404
    unsafe = await console.http.post("/console/signals/logout-uri", data={
        "csrf_token": csrf, "client_id": mine.client_id, "uri": "http://shop.example/bcl"})
    assert unsafe.status_code == 400 and "https" in unsafe.text
    forged = await console.http.post("/console/signals/logout-uri", data={
        "client_id": mine.client_id, "uri": ""})
    assert forged.status_code == 403
