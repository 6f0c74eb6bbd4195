"""Consent for third-party clients (issue 9, item 6; OIDC Core §3.1.2.4, §3.1.2.6): the
screen once per scope set, stored; ``prompt=none`` without consent answers
``consent_required``; first-party clients never ask."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx

from tessera.identity.compose import Identity
from tessera.observability import events
from tests.e2e.helpers import audit_rows, form_fields
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair

PASSWORD = "correct horse battery"


def _params(app: AppClient, scope: str, **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
            "scope": scope, "state": "s-1", "code_challenge": pkce_pair()[1],
            "code_challenge_method": "S256", **extra}


def _query(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return parse_qs(urlsplit(location).query)


def _scopes_shown(page: httpx.Response) -> list[str]:
    listed = re.search(r"<ul id=scopes>(.*?)</ul>", page.text, re.S)
    assert listed, page.text
    return re.findall(r"<code>([^<]+)</code>", listed.group(1))


async def _sign_in(tessera: TesseraDriver, app: AppClient, scope: str) -> httpx.Response:
    page = await tessera.http.get("/authorize", params=_params(app, scope))
    assert page.status_code == 200 and "Sign in" in page.text, page.text
    return await tessera.http.post("/authorize", data=form_fields(page.text) | {
        "username": "alice", "password": PASSWORD})


async def _decide(tessera: TesseraDriver, screen: httpx.Response,
                  decision: str) -> httpx.Response:
    assert "Allow" in screen.text and "action=\"authorize/consent\"" in screen.text
    return await tessera.http.post("/authorize/consent",
                                   data=form_fields(screen.text) | {"decision": decision})


async def test_a_third_party_client_asks_once_per_scope_set(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client(third_party=True, scope="api:read api:write tessera:admin")
    await tessera.user()
    screen = await _sign_in(tessera, app, "openid api:read tessera:admin")
    assert screen.status_code == 200 and "Allow" in screen.text
    assert "code=" not in screen.headers.get("location", "")
    # the privilege alice does not hold is not even asked for
    assert _scopes_shown(screen) == ["api:read", "openid"]
    granted = _query(await _decide(tessera, screen, "allow"))
    assert granted["code"] and granted["state"] == ["s-1"]
    [row] = await audit_rows(identity, events.CONSENT_GRANTED)
    assert row.fields["client_id"] == app.client_id and row.fields["scopes"] == "api:read openid"

    # the same scope set (or less): no screen, straight to the code, even silently
    for extra in ({}, {"prompt": "none"}):
        again = await tessera.http.get("/authorize", params=_params(app, "openid api:read",
                                                                    **extra))
        assert _query(again)["code"]
    # a new scope: asked again; silently, consent_required
    silent = await tessera.http.get("/authorize", params=_params(
        app, "openid api:read api:write", prompt="none"))
    assert _query(silent)["error"] == ["consent_required"]
    wider = await tessera.http.get("/authorize", params=_params(app, "openid api:write"))
    assert wider.status_code == 200 and _scopes_shown(wider) == ["api:write", "openid"]
    assert _query(await _decide(tessera, wider, "allow"))["code"]
    # prompt=consent always asks
    forced = await tessera.http.get("/authorize", params=_params(app, "openid",
                                                                 prompt="consent"))
    assert forced.status_code == 200 and "Allow" in forced.text


async def test_denying_consent_answers_access_denied_and_stores_nothing(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client(third_party=True)
    await tessera.user()
    screen = await _sign_in(tessera, app, "openid api:read")
    denied = _query(await _decide(tessera, screen, "deny"))
    assert denied["error"] == ["access_denied"] and "code" not in denied
    assert len(await audit_rows(identity, events.CONSENT_DENIED)) == 1
    silent = await tessera.http.get("/authorize", params=_params(app, "openid api:read",
                                                                 prompt="none"))
    assert _query(silent)["error"] == ["consent_required"]


async def test_prompt_none_without_consent_is_consent_required(
        tessera: TesseraDriver) -> None:
    first = await tessera.web_client()
    third = await tessera.web_client(third_party=True)
    await tessera.user()
    await tessera.login_tokens(first)  # signed in, via a first-party client: no question
    silent = await tessera.http.get("/authorize", params=_params(third, "openid",
                                                                 prompt="none"))
    query = _query(silent)
    assert query["error"] == ["consent_required"] and query["state"] == ["s-1"]
    assert query["iss"] == [tessera.identity.settings.issuer]


async def test_the_consent_form_needs_its_session_bound_token(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client(third_party=True)
    await tessera.user()
    screen = await _sign_in(tessera, app, "openid api:read")
    fields = form_fields(screen.text)
    forged = await tessera.http.post("/authorize/consent", data=fields | {
        "csrf_token": "0" * 64, "decision": "allow"})
    assert forged.status_code == 403
    tessera.http.cookies.clear()  # no session at all
    lost = await tessera.http.post("/authorize/consent", data=fields | {"decision": "allow"})
    assert _query(lost)["error"] == ["login_required"]
    async with identity.store.unit_of_work(read_only=True) as uow:
        alice = await uow.users.by_username("default", "alice")
        assert alice is not None
        assert await uow.consents.get(alice.user_id, app.client_id) is None
