"""Authorization code + PKCE through the login page, ID token, userinfo."""

from __future__ import annotations

from tessera.identity.compose import Identity
from tests.conftest import ISSUER
from tests.support import REDIRECT, TesseraDriver, pkce_pair
from tests.tokens import claims_of


async def test_login_code_exchange_issues_tokens_bound_to_the_session(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    user_id = await tessera.user()
    tokens = await tessera.login_tokens(app, nonce="n-1")
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 300
    claims = claims_of(tokens["access_token"])
    assert claims["sub"] == user_id and claims["sid"] and claims["sv"] == 1
    assert claims["acr"] and claims["amr"] == ["pwd"] and claims["tid"] == "default"
    id_claims = claims_of(tokens["id_token"])
    assert id_claims["nonce"] == "n-1" and id_claims["aud"] == app.client_id
    assert id_claims["sid"] == claims["sid"] and "at_hash" in id_claims
    userinfo = await tessera.http.get(
        "/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == user_id


async def test_code_is_single_use_and_replay_revokes_the_family(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    await tessera.user()
    verifier, challenge = pkce_pair()
    code = await tessera.authorize_code(app, challenge=challenge)
    first = await tessera.token(app, grant_type="authorization_code", code=code,
                                redirect_uri=REDIRECT, code_verifier=verifier)
    assert first.status_code == 200
    replay = await tessera.token(app, grant_type="authorization_code", code=code,
                                 redirect_uri=REDIRECT, code_verifier=verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refresh = await tessera.token(app, grant_type="refresh_token",
                                  refresh_token=first.json()["refresh_token"])
    assert refresh.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: tokens already issued from the code SHOULD be revoked too
    assert await tessera.introspect(app, first.json()["access_token"]) == {"active": False}


async def test_wrong_pkce_verifier_is_refused(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    await tessera.user()
    _, challenge = pkce_pair()
    code = await tessera.authorize_code(app, challenge=challenge)
    other_verifier, _ = pkce_pair()
    response = await tessera.token(app, grant_type="authorization_code", code=code,
                                   redirect_uri=REDIRECT, code_verifier=other_verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_public_client_must_use_pkce(tessera: TesseraDriver) -> None:
    app = await tessera.web_client(public=True)
    response = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "x"})
    assert response.status_code == 303
    assert "error=invalid_request" in response.headers["location"]
    assert f"iss={ISSUER.replace(':', '%3A').replace('/', '%2F')}" in response.headers["location"]


async def test_unregistered_redirect_uri_is_never_redirected_to(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    response = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": app.client_id,
        "redirect_uri": "https://evil.example/cb", "scope": "openid"})
    assert response.status_code == 400 and "location" not in response.headers


async def test_wrong_password_shows_the_form_again(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    await tessera.user()
    try:
        await tessera.authorize_code(app, password="wrong password!")
    except AssertionError as exc:
        assert "Wrong username or password" in str(exc)
    else:
        raise AssertionError("login with a wrong password succeeded")
