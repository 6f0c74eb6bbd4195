"""Authorization endpoint extras (OIDC Core §3.1.2.1): ``prompt``, ``max_age``, the browser
session (SSO), and errors that go back to the client."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from tessera.core.clock import FixedClock
from tessera.identity.compose import Identity
from tessera.observability import events
from tests.conftest import ISSUER
from tests.e2e.helpers import audit_rows, claims_of
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair


def _params(app: AppClient, **extra: str) -> dict[str, str]:
    _, challenge = pkce_pair()
    return {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
            "scope": "openid api:read", "state": "s-123", "code_challenge": challenge,
            "code_challenge_method": "S256", **extra}


def _query(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(f"{REDIRECT}?")
    return parse_qs(urlsplit(location).query)


async def test_prompt_none_without_a_session_is_login_required(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    query = _query(await tessera.http.get("/authorize", params=_params(app, prompt="none")))
    assert query["error"] == ["login_required"] and query["state"] == ["s-123"]
    assert query["iss"] == [ISSUER] and "code" not in query


async def test_existing_browser_session_skips_the_login_form(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    await tessera.user()
    first = await tessera.login_tokens(app)
    again = await tessera.http.get("/authorize", params=_params(app))
    assert "code" in _query(again)
    silent = await tessera.http.get("/authorize", params=_params(app, prompt="none"))
    assert "code" in _query(silent)
    # SSO: the second client joins the same session
    other = await tessera.web_client()
    second = await tessera.login_tokens(other)
    assert claims_of(second["access_token"])["sid"] == claims_of(first["access_token"])["sid"]
    assert len(await audit_rows(identity, events.SESSION_CREATED)) == 1


async def test_max_age_zero_forces_a_fresh_login(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await tessera.login_tokens(app)
    page = await tessera.http.get("/authorize", params=_params(app, max_age="0"))
    assert page.status_code == 200 and "Sign in" in page.text
    silent = await tessera.http.get("/authorize", params=_params(app, max_age="0",
                                                                 prompt="none"))
    assert _query(silent)["error"] == ["login_required"]


async def test_max_age_allows_a_recent_login_and_refuses_an_old_one(
        tessera: TesseraDriver, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    await tessera.login_tokens(app)
    clock.advance(30)
    recent = await tessera.http.get("/authorize", params=_params(app, max_age="60"))
    assert "code" in _query(recent)
    clock.advance(60)
    old = await tessera.http.get("/authorize", params=_params(app, max_age="60"))
    assert old.status_code == 200 and "Sign in" in old.text


async def test_prompt_login_forces_a_fresh_login_and_updates_auth_time(
        tessera: TesseraDriver, clock: FixedClock) -> None:
    app = await tessera.web_client()
    await tessera.user()
    first = await tessera.login_tokens(app)
    clock.advance(120)
    second = await tessera.login_tokens(app, extra={"prompt": "login"})
    assert claims_of(second["id_token"])["auth_time"] == \
        claims_of(first["id_token"])["auth_time"] + 120


async def test_unsupported_response_type_goes_back_to_the_client(
        tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    for response_type in ("token", "id_token", "code token"):
        query = _query(await tessera.http.get(
            "/authorize", params=_params(app, response_type=response_type)))
        assert query["error"] == ["unsupported_response_type"], response_type
        assert query["state"] == ["s-123"] and "code" not in query


async def test_scope_beyond_the_client_is_invalid_scope(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    query = _query(await tessera.http.get("/authorize",
                                          params=_params(app, scope="openid tessera:admin")))
    assert query["error"] == ["invalid_scope"]


async def test_plain_pkce_is_refused(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    verifier, _ = pkce_pair()
    query = _query(await tessera.http.get("/authorize", params=_params(
        app, code_challenge=verifier[:43], code_challenge_method="plain")))
    assert query["error"] == ["invalid_request"]
