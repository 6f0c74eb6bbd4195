"""Token introspection (RFC 7662): confidential callers only; live state decides
``active``; inactive tokens reveal nothing else."""

from __future__ import annotations

from tessera.core.clock import FixedClock
from tests.conftest import ISSUER
from tests.e2e.helpers import claims_of, client_token, logged_in, refresh, revoke
from tests.support import TesseraDriver


async def test_requires_confidential_client_authentication(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    anonymous = await tessera.http.post("/introspect", data={"token": tokens["access_token"]})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    wrong = await tessera.http.post("/introspect", data={"token": tokens["access_token"]},
                                    auth=(app.client_id, "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    public = await tessera.web_client(public=True)
    as_public = await tessera.http.post("/introspect", data={
        "token": tokens["access_token"], "client_id": public.client_id})
    assert as_public.status_code == 401 and as_public.json()["error"] == "invalid_client"


async def test_active_access_token_returns_its_claims(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    resource_server = await tessera.client()
    body = await tessera.introspect(resource_server, tokens["access_token"])
    claims = claims_of(tokens["access_token"])
    assert body["active"] is True
    for name in ("sub", "client_id", "jti", "exp", "iat", "sid", "sv", "scope", "aud"):
        assert body[name] == claims[name], name
    assert body["iss"] == ISSUER and body["client_id"] == app.client_id


async def test_response_is_not_cacheable(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    response = await tessera.http.post("/introspect", data={"token": tokens["access_token"]},
                                       auth=app.auth)  # type: ignore[arg-type]
    assert response.headers["cache-control"] == "no-store"


async def test_revoked_access_token_is_inactive(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    assert (await revoke(tessera, app, tokens["access_token"])).status_code == 200
    assert await tessera.introspect(app, tokens["access_token"]) == {"active": False}


async def test_client_credentials_token_is_active(tessera: TesseraDriver) -> None:
    service = await tessera.client()
    token = await client_token(tessera, service)
    body = await tessera.introspect(service, token)
    assert body["active"] is True and body["sub"] == service.client_id


async def test_refresh_token_introspection_by_its_client(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    body = await tessera.introspect(app, tokens["refresh_token"])
    assert body["active"] is True and body["client_id"] == app.client_id
    assert body["sid"] == claims_of(tokens["access_token"])["sid"]
    hinted = await tessera.introspect(app, tokens["refresh_token"],
                                      token_type_hint="refresh_token")
    assert hinted["active"] is True
    other = await tessera.client()
    assert await tessera.introspect(other, tokens["refresh_token"]) == {"active": False}


async def test_rotated_refresh_token_is_inactive(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    new = (await refresh(tessera, app, tokens["refresh_token"])).json()
    assert await tessera.introspect(app, tokens["refresh_token"]) == {"active": False}
    assert (await tessera.introspect(app, new["refresh_token"]))["active"] is True


async def test_a_wrong_hint_does_not_hide_the_token(tessera: TesseraDriver) -> None:
    """RFC 7662 §2.1: a server that cannot find the token by the hint MUST search the
    other token types."""
    app, tokens = await logged_in(tessera)
    as_refresh = await tessera.introspect(app, tokens["access_token"],
                                          token_type_hint="refresh_token")
    assert as_refresh["active"] is True
    as_access = await tessera.introspect(app, tokens["refresh_token"],
                                         token_type_hint="access_token")
    assert as_access["active"] is True


async def test_unknown_and_garbage_tokens_are_inactive(tessera: TesseraDriver) -> None:
    app = await tessera.client()
    for token in ("unknown-token", "a.b.c", "eyJhbGciOiJub25lIn0.e30."):
        assert await tessera.introspect(app, token) == {"active": False}, token


async def test_expired_access_token_is_inactive(tessera: TesseraDriver,
                                                clock: FixedClock) -> None:
    app, tokens = await logged_in(tessera)
    clock.advance(300 + 60)
    assert await tessera.introspect(app, tokens["access_token"]) == {"active": False}
