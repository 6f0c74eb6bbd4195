"""Client credentials grant (RFC 6749 §4.4): client authentication (§2.3.1), scope subset,
resource selection (RFC 8707), no refresh token, audited by token hash only."""

from __future__ import annotations

import orjson

from tessera.core.secrets import token_hash
from tessera.identity.compose import Identity
from tessera.observability import events
from tests.conftest import ISSUER
from tests.e2e.helpers import audit_rows, claims_of
from tests.support import AppClient, TesseraDriver


async def test_basic_auth_issues_an_access_token_and_no_refresh_token(
        tessera: TesseraDriver) -> None:
    app = await tessera.client()
    response = await tessera.token(app, grant_type="client_credentials")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert "refresh_token" not in body and "id_token" not in body
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["scope"] == "api:read api:write"
    claims = claims_of(body["access_token"])
    assert claims["sub"] == app.client_id == claims["client_id"]
    assert claims["aud"] == "https://api.example" and "sid" not in claims


async def test_post_auth_works_too(tessera: TesseraDriver) -> None:
    app = await tessera.client()
    assert app.secret
    response = await tessera.http.post("/token", data={
        "grant_type": "client_credentials", "client_id": app.client_id,
        "client_secret": app.secret})
    assert response.status_code == 200, response.text


async def test_wrong_secret_with_basic_gets_a_basic_challenge(tessera: TesseraDriver) -> None:
    app = await tessera.client()
    response = await tessera.http.post("/token", data={"grant_type": "client_credentials"},
                                       auth=(app.client_id, "wrong-secret"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].lower().startswith("basic")


async def test_wrong_secret_in_the_body_is_invalid_client(tessera: TesseraDriver) -> None:
    app = await tessera.client()
    response = await tessera.http.post("/token", data={
        "grant_type": "client_credentials", "client_id": app.client_id,
        "client_secret": "wrong-secret"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_unknown_client_is_invalid_client(tessera: TesseraDriver) -> None:
    response = await tessera.http.post("/token", data={"grant_type": "client_credentials"},
                                       auth=("c_nobody", "whatever"))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_public_client_is_refused(tessera: TesseraDriver) -> None:
    app = await tessera.web_client(public=True)
    response = await tessera.token(app, grant_type="client_credentials")
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("unauthorized_client", "invalid_client")
    assert "access_token" not in response.json()


async def test_client_without_the_grant_is_unauthorized(tessera: TesseraDriver) -> None:
    app = await tessera.web_client()
    response = await tessera.token(app, grant_type="client_credentials")
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


async def test_scope_must_be_a_subset(tessera: TesseraDriver) -> None:
    app = await tessera.client(scope="api:read api:write")
    narrow = await tessera.token(app, grant_type="client_credentials", scope="api:read")
    assert narrow.status_code == 200 and narrow.json()["scope"] == "api:read"
    assert claims_of(narrow.json()["access_token"])["scope"] == "api:read"
    wide = await tessera.token(app, grant_type="client_credentials",
                               scope="api:read tessera:admin")
    assert wide.status_code == 400 and wide.json()["error"] == "invalid_scope"


async def test_resource_selects_one_of_the_clients_audiences(tessera: TesseraDriver) -> None:
    app = await tessera.client(audiences=("https://api.example", "https://billing.example"))
    default = await tessera.token(app, grant_type="client_credentials")
    assert claims_of(default.json()["access_token"])["aud"] == "https://api.example"
    chosen = await tessera.token(app, grant_type="client_credentials",
                                 resource="https://billing.example")
    assert chosen.status_code == 200, chosen.text
    assert claims_of(chosen.json()["access_token"])["aud"] == "https://billing.example"
    foreign = await tessera.token(app, grant_type="client_credentials",
                                  resource="https://other.example")
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_target"


async def test_client_without_audiences_gets_the_issuer(tessera: TesseraDriver) -> None:
    app = await tessera.client(audiences=())
    response = await tessera.token(app, grant_type="client_credentials")
    assert claims_of(response.json()["access_token"])["aud"] == ISSUER


async def test_every_issue_is_audited_by_hash_never_by_token(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.client()
    tokens = []
    for _ in range(2):
        response = await tessera.token(app, grant_type="client_credentials")
        tokens.append(response.json()["access_token"])
    issued = await audit_rows(identity, events.TOKEN_ISSUED)
    assert len(issued) == 2
    assert {r.fields["token_hash"] for r in issued} == {token_hash(t) for t in tokens}
    assert {r.fields["jti"] for r in issued} == {claims_of(t)["jti"] for t in tokens}
    assert all(r.fields["client_id"] == app.client_id for r in issued)
    assert app.secret
    everything = orjson.dumps([r.fields for r in await audit_rows(identity)]).decode()
    for secret in (*tokens, app.secret):
        assert secret not in everything


async def test_repeated_bad_secrets_are_throttled(tessera: TesseraDriver) -> None:
    app = await tessera.client()
    wrong = AppClient(app.client_id, "not-the-secret")
    limit = tessera.identity.settings.security.client_auth_failures_per_minute
    for _ in range(limit):
        response = await tessera.token(wrong, grant_type="client_credentials")
        assert response.status_code == 401
    throttled = await tessera.token(wrong, grant_type="client_credentials")
    assert throttled.status_code == 429 and throttled.json()["error"] == "slow_down"
    # the right secret from the same address is throttled too: guessing must not pay off
    assert (await tessera.token(app, grant_type="client_credentials")).status_code == 429
    # another client from the same address is not (the window slides: test_throttles.py)
    other = await tessera.client()
    assert (await tessera.token(other, grant_type="client_credentials")).status_code == 200
