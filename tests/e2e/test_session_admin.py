"""Session versions and session revocation through the admin API (POST /admin/sessions):
older ``sv`` tokens go stale, a refresh picks up the new ``sv``, revoke ends the session."""

from __future__ import annotations

import httpx

from tessera.identity.compose import Identity
from tessera.observability import events
from tests.e2e.helpers import admin_client, audit_rows, claims_of, client_token, logged_in, refresh
from tests.support import TesseraDriver


async def _admin(tessera: TesseraDriver, token: str, **data: str) -> httpx.Response:
    return await tessera.http.post("/admin/sessions", data=data,
                                   headers={"authorization": f"Bearer {token}"})


async def _admin_token(tessera: TesseraDriver) -> str:
    return await client_token(tessera, await admin_client(tessera))


async def _assert_bumped(tessera: TesseraDriver, **target: str) -> None:
    response = await _admin(tessera, await _admin_token(tessera), action="bump_version",
                            **target)
    assert response.status_code == 200, response.text
    assert response.json() == {"sessions": 1}
    assert response.headers["cache-control"] == "no-store"


async def test_bump_version_by_sid_makes_older_tokens_stale(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    sid = claims_of(tokens["access_token"])["sid"]
    await _assert_bumped(tessera, sid=sid)
    assert await tessera.introspect(app, tokens["access_token"]) == {"active": False}
    fresh = await refresh(tessera, app, tokens["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    assert claims_of(fresh.json()["access_token"])["sv"] == 2
    body = await tessera.introspect(app, fresh.json()["access_token"])
    assert body["active"] is True and body["sv"] == 2
    bumped = await audit_rows(identity, events.SESSION_VERSION_BUMPED)
    assert [(r.fields["sid"], r.fields["sv"]) for r in bumped] == [(sid, 2)]


async def test_bump_version_by_user_covers_every_session(tessera: TesseraDriver) -> None:
    app, first = await logged_in(tessera)
    tessera.http.cookies.clear()  # a second browser: a second session
    second = await tessera.login_tokens(app)
    user_id = claims_of(first["access_token"])["sub"]
    assert claims_of(second["access_token"])["sid"] != claims_of(first["access_token"])["sid"]
    response = await _admin(tessera, await _admin_token(tessera), action="bump_version",
                            user_id=user_id)
    assert response.status_code == 200 and response.json() == {"sessions": 2}
    for tokens in (first, second):
        assert await tessera.introspect(app, tokens["access_token"]) == {"active": False}


async def test_revoke_ends_the_session(tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    sid = claims_of(tokens["access_token"])["sid"]
    response = await _admin(tessera, await _admin_token(tessera), action="revoke", sid=sid,
                            reason="compromised")
    assert response.status_code == 200 and response.json() == {"sessions": 1}
    assert await tessera.introspect(app, tokens["access_token"]) == {"active": False}
    assert (await refresh(tessera, app, tokens["refresh_token"])).json()["error"] == \
        "invalid_grant"
    revoked = await audit_rows(identity, events.SESSION_REVOKED)
    assert [r.fields["reason"] for r in revoked] == ["compromised"]
    # the browser session is gone too: the next authorization asks for a login again
    page = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": app.client_id, "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256"})
    assert page.status_code == 200 and "Sign in" in page.text


async def test_unknown_session_counts_zero(tessera: TesseraDriver) -> None:
    response = await _admin(tessera, await _admin_token(tessera), action="bump_version",
                            sid="no-such-session")
    assert response.status_code == 200 and response.json() == {"sessions": 0}


async def test_missing_admin_scope_is_403(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    plain = await client_token(tessera, await admin_client(tessera, scope="api:read"))
    sid = claims_of(tokens["access_token"])["sid"]
    response = await _admin(tessera, plain, action="revoke", sid=sid)
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    assert "insufficient_scope" in response.headers["www-authenticate"]
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True


async def test_admin_token_must_be_meant_for_the_issuer(tessera: TesseraDriver) -> None:
    """A token for another audience is refused even with the admin scope (RFC 8707)."""
    service = await tessera.client(scope="tessera:admin", audiences=("https://api.example",))
    response = await _admin(tessera, await client_token(tessera, service),
                            action="bump_version", sid="x")
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


async def test_missing_or_bad_bearer_is_401(tessera: TesseraDriver) -> None:
    anonymous = await tessera.http.post("/admin/sessions", data={"action": "revoke",
                                                                 "sid": "x"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = await _admin(tessera, "a.b.c", action="revoke", sid="x")
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"


async def test_bad_actions_and_targets_are_invalid_request(tessera: TesseraDriver) -> None:
    token = await _admin_token(tessera)
    for data in ({"action": "delete", "sid": "x"}, {"action": "revoke"},
                 {"action": "revoke", "sid": "x", "user_id": "y"}):
        response = await _admin(tessera, token, **data)
        assert response.status_code == 400, (data, response.text)
        assert response.json()["error"] == "invalid_request"


async def test_revoked_admin_token_is_refused(tessera: TesseraDriver) -> None:
    admin = await admin_client(tessera)
    token = await client_token(tessera, admin)
    revoked = await tessera.http.post("/revoke", data={"token": token},
                                      auth=admin.auth)  # type: ignore[arg-type]
    assert revoked.status_code == 200
    response = await _admin(tessera, token, action="bump_version", sid="x")
    assert response.status_code == 401
