"""The token (RFC 6749 §4.4), revocation (RFC 7009) and introspection (RFC 7662) endpoints
called as what they are: plain ``OAuthRequest`` values in, ``OAuthResponse`` values out,
no web framework (the HTTP binding has its own tests in tests/e2e/)."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest

from tessera.application import admin
from tessera.core.clients import GRANT_CLIENT_CREDENTIALS
from tessera.identity.compose import Identity
from tessera.protocol.http import FORM_CONTENT_TYPE, OAuthRequest, OAuthResponse
from tests.conftest import ISSUER

AUDIENCE = "https://api.example"


def form(path: str, client: tuple[str, str] | None, **params: str) -> OAuthRequest:
    headers = {"content-type": FORM_CONTENT_TYPE}
    if client is not None:
        basic = base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()
        headers["authorization"] = f"Basic {basic}"
    return OAuthRequest(method="POST", url=f"{ISSUER}{path}", headers=headers,
                        body=urlencode(params).encode())


async def service_client(identity: Identity, tenant_id: str | None = None) -> tuple[str, str]:
    client, secret = await admin.create_client(
        identity.admin, name="svc", grants=(GRANT_CLIENT_CREDENTIALS,), public=False,
        redirect_uris=(), scope="api:read", audiences=(AUDIENCE,), tenant_id=tenant_id)
    assert secret is not None
    return client.client_id, secret


async def issued(identity: Identity, client: tuple[str, str]) -> str:
    response = await identity.token.handle(form("/token", client,
                                                grant_type="client_credentials"))
    assert response.status == 200, response.json
    assert response.headers["cache-control"] == "no-store"
    assert response.json["token_type"] == "Bearer"
    return str(response.json["access_token"])


async def introspect(identity: Identity, client: tuple[str, str], token: str) -> OAuthResponse:
    return await identity.introspection.handle(form("/introspect", client, token=token))


async def test_issue_introspect_revoke_introspect(identity: Identity) -> None:
    app = await service_client(identity)
    token = await issued(identity, app)
    active = await introspect(identity, app, token)
    assert active.status == 200
    assert active.json["active"] is True and active.json["client_id"] == app[0]
    assert AUDIENCE in active.json["aud"] and active.json["iss"] == ISSUER

    revoked = await identity.revocation.handle(form("/revoke", app, token=token,
                                                    token_type_hint="access_token"))
    assert (revoked.status, revoked.json) == (200, {})
    assert (await introspect(identity, app, token)).json == {"active": False}


async def test_revocation_of_an_unknown_token_reveals_nothing(identity: Identity) -> None:
    app = await service_client(identity)
    for token in ("not-a-token", "a.b.c"):
        response = await identity.revocation.handle(form("/revoke", app, token=token))
        assert (response.status, response.json) == (200, {})  # RFC 7009 §2.2


async def test_another_clients_token_is_refused_and_another_tenants_ignored(
        identity: Identity) -> None:
    owner, other = await service_client(identity), await service_client(identity)
    elsewhere = await service_client(identity, tenant_id="globex")
    token = await issued(identity, owner)
    refused = await identity.revocation.handle(form("/revoke", other, token=token))
    assert (refused.status, refused.json["error"]) == (400, "invalid_grant")
    ignored = await identity.revocation.handle(form("/revoke", elsewhere, token=token))
    assert (ignored.status, ignored.json) == (200, {})
    assert (await introspect(identity, elsewhere, token)).json == {"active": False}
    assert (await introspect(identity, owner, token)).json["active"] is True


@pytest.mark.parametrize(("endpoint", "params", "status", "error"), [
    ("revocation", {}, 400, "invalid_request"),
    ("revocation", {"token": "t", "token_type_hint": "id_token"}, 400,
     "unsupported_token_type"),
    ("introspection", {}, 400, "invalid_request"),
    ("token", {}, 400, "invalid_request"),
    ("token", {"grant_type": "password"}, 400, "unsupported_grant_type"),
])
async def test_bad_requests_get_an_rfc_6749_error(identity: Identity, endpoint: str,
                                                 params: dict[str, str], status: int,
                                                 error: str) -> None:
    app = await service_client(identity)
    response = await getattr(identity, endpoint).handle(form(f"/{endpoint}", app, **params))
    assert (response.status, response.json["error"]) == (status, error)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("endpoint", ["token", "revocation", "introspection"])
async def test_a_wrong_secret_is_invalid_client_with_a_challenge(identity: Identity,
                                                                 endpoint: str) -> None:
    app_id, _ = await service_client(identity)
    response = await getattr(identity, endpoint).handle(
        form(f"/{endpoint}", (app_id, "wrong"), token="t", grant_type="client_credentials"))
    assert (response.status, response.json["error"]) == (401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")
