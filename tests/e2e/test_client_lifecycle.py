"""Client lifecycle (issue 9, item 5): disabling, deleting and rotating the secret of a
client publish a client-wide revocation through the outbox that the verifier SDK
honours; a disabled or deleted client gets nothing."""

from __future__ import annotations

import pytest

from tessera.application import client_admin
from tessera.application.admin import AdminError
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationKind
from tessera.identity.compose import Identity
from tests.e2e.helpers import (
    client_token,
    last_seq,
    published_kinds,
    refresh,
    verifier_verdict,
)
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair

API = "https://api.example"


async def _authorize(tessera: TesseraDriver, app: AppClient) -> int:
    response = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "s", "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256"})
    return response.status_code


async def test_disabling_a_client_revokes_its_tokens_and_refuses_it(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    web = await tessera.web_client()
    checker = await tessera.client()  # another client of the tenant, to introspect
    await tessera.user()
    tokens = await tessera.login_tokens(web)
    seq = await last_seq(identity)
    assert await client_admin.set_disabled(identity.admin, web.client_id, disabled=True) == 1
    published = await published_kinds(identity, seq)
    assert (RevocationKind.CLIENT_REVOKED, web.client_id) in published
    assert RevocationKind.FAMILY_REVOKED in {kind for kind, _ in published}
    assert await verifier_verdict(identity, tokens["access_token"], API) in (
        "client_revoked", "family_revoked")
    assert await tessera.introspect(checker, tokens["access_token"]) == {"active": False}
    refused = await refresh(tessera, web, tokens["refresh_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert await _authorize(tessera, web) == 400

    clock.advance(1)
    await client_admin.set_disabled(identity.admin, web.client_id, disabled=False)
    assert await _authorize(tessera, web) in (200, 303)
    # the refresh family ended with the disable: nothing revoked comes back
    assert (await refresh(tessera, web, tokens["refresh_token"])).json()[
        "error"] == "invalid_grant"


async def test_rotating_the_secret_revokes_issued_tokens_and_the_old_secret(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    web = await tessera.web_client()
    await tessera.user()
    tokens = await tessera.login_tokens(web)
    seq = await last_seq(identity)
    secret = await client_admin.rotate_secret(identity.admin, web.client_id)
    assert secret != web.secret
    assert await published_kinds(identity, seq) == [(RevocationKind.CLIENT_REVOKED,
                                                     web.client_id)]
    assert await verifier_verdict(identity, tokens["access_token"], API) == "client_revoked"
    old = await refresh(tessera, web, tokens["refresh_token"])
    assert old.status_code == 401
    clock.advance(1)
    rotated = AppClient(web.client_id, secret)
    fresh = await refresh(tessera, rotated, tokens["refresh_token"])  # the family stays
    assert fresh.status_code == 200, fresh.text
    assert await verifier_verdict(identity, fresh.json()["access_token"], API) is None
    public = await tessera.web_client(public=True)
    with pytest.raises(AdminError, match="public client"):
        await client_admin.rotate_secret(identity.admin, public.client_id)


async def test_deleting_a_client_leaves_nothing_usable(
        tessera: TesseraDriver, identity: Identity) -> None:
    service = await tessera.client()
    checker = await tessera.client()
    token = await client_token(tessera, service)
    seq = await last_seq(identity)
    await client_admin.delete_client(identity.admin, service.client_id)
    assert (RevocationKind.CLIENT_REVOKED, service.client_id) in await published_kinds(
        identity, seq)
    assert await tessera.introspect(checker, token) == {"active": False}
    assert await verifier_verdict(identity, token, API) == "client_revoked"
    again = await tessera.token(service, grant_type="client_credentials")
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"
    with pytest.raises(AdminError, match="no client"):
        await client_admin.delete_client(identity.admin, service.client_id)
