"""Tenant lifecycle (issue 9, item 3): suspending a tenant revokes every session and
token of it, through the outbox, and refuses every new login and grant in it until it is
resumed; other tenants carry on."""

from __future__ import annotations

import pytest

from tessera.application import tenancy
from tessera.application.admin import AdminError
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationKind
from tessera.identity.compose import Identity
from tessera.protocol.token_state import TokenInactive
from tests.e2e.helpers import (
    claims_of,
    client_token,
    last_seq,
    published_kinds,
    refresh,
    verifier_verdict,
)
from tests.support import REDIRECT, TesseraDriver, pkce_pair

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
API = "https://api.example"


async def _inactive(identity: Identity, token: str) -> str:
    with pytest.raises(TokenInactive) as caught:
        await identity.token_state.check(token, any_binding=True)
    return caught.value.reason


async def test_suspend_revokes_everything_and_refuses_new_logins_and_grants(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    web = await tessera.web_client(tenant="acme")
    service = await tessera.client(tenant="acme")
    gateway = await tessera.client(grants=(EXCHANGE,), tenant="acme",
                                   audiences=("https://orders.internal",),
                                   subject_audiences=(API,))
    await tessera.user("alice", tenant="acme")
    alice = await tessera.login_tokens(web)
    sso = dict(tessera.http.cookies)
    machine = await client_token(tessera, service)
    # another tenant, untouched by all of this
    tessera.http.cookies.clear()
    home = await tessera.web_client()
    await tessera.user("bob")
    bob = await tessera.login_tokens(home, username="bob")

    seq = await last_seq(identity)
    assert await tenancy.suspend_tenant(identity.admin, "acme", actor="test") == 1
    published = await published_kinds(identity, seq)
    assert published[0] == (RevocationKind.TENANT_REVOKED, "acme")
    assert (RevocationKind.SESSION_REVOKED, claims_of(alice["access_token"])["sid"]) \
        in published
    assert RevocationKind.FAMILY_REVOKED in {kind for kind, _ in published}

    # every token of the tenant is dead, here and at every verifier
    # (the identity service and verifiers share one validator: the same reasons)
    assert await _inactive(identity, alice["access_token"]) in ("session_revoked",
                                                                "tenant_revoked")
    assert await _inactive(identity, machine) in ("tenant_suspended", "tenant_revoked")
    assert await verifier_verdict(identity, alice["access_token"], API) in (
        "session_revoked", "tenant_revoked")
    assert await verifier_verdict(identity, machine, API) == "tenant_revoked"

    # no grant: the tenant's clients cannot even authenticate
    for response in (await refresh(tessera, web, alice["refresh_token"]),
                     await tessera.token(service, grant_type="client_credentials"),
                     await tessera.token(gateway, grant_type=EXCHANGE,
                                         subject_token=alice["access_token"],
                                         subject_token_type=AT,
                                         audience="https://orders.internal")):
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    # no login, with or without the old browser session
    for cookies in (sso, {}):
        tessera.http.cookies.clear()
        tessera.http.cookies.update(cookies)
        page = await tessera.http.get("/authorize", params={
            "response_type": "code", "client_id": web.client_id, "redirect_uri": REDIRECT,
            "scope": "openid", "state": "s", "code_challenge": pkce_pair()[1],
            "code_challenge_method": "S256"})
        assert page.status_code == 400 and "not available" in page.text
    # the other tenant carries on
    assert (await tessera.introspect(home, bob["access_token"]))["active"] is True

    clock.advance(1)
    assert await tenancy.resume_tenant(identity.admin, "acme", actor="test") is True
    tessera.http.cookies.clear()
    again = await tessera.login_tokens(web)
    assert (await tessera.introspect(web, again["access_token"]))["active"] is True
    assert await client_token(tessera, service)
    # nothing revoked comes back
    assert await tessera.introspect(web, alice["access_token"]) == {"active": False}
    assert (await refresh(tessera, web, alice["refresh_token"])).json()[
        "error"] == "invalid_grant"
    assert await verifier_verdict(identity, machine, API) == "tenant_revoked"
    assert await verifier_verdict(identity, again["access_token"], API) is None


async def test_a_suspended_tenants_users_cannot_sign_in_even_with_the_right_password(
        tessera: TesseraDriver, identity: Identity) -> None:
    web = await tessera.web_client(tenant="acme")
    await tessera.user("alice", tenant="acme")
    await tenancy.suspend_tenant(identity.admin, "acme", actor="test")
    # the authorization endpoint refuses the tenant's client before any password
    page = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": web.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "s", "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256"})
    assert page.status_code == 400
    from tessera.identity.login import LoginFailed

    with pytest.raises(LoginFailed):
        await identity.login.authenticate("acme", "alice", "correct horse battery",
                                          client_host=None)


async def test_tenant_verbs_need_a_registered_tenant(identity: Identity) -> None:
    created = await tenancy.create_tenant(identity.admin, "initech", name="Initech")
    assert (created.tenant_id, created.name, created.active) == ("initech", "Initech", True)
    with pytest.raises(AdminError, match="exists already"):
        await tenancy.create_tenant(identity.admin, "initech")
    for verb in (tenancy.suspend_tenant, tenancy.resume_tenant):
        with pytest.raises(AdminError, match="no tenant"):
            await verb(identity.admin, "nowhere")
    assert await tenancy.resume_tenant(identity.admin, "initech") is False  # was not suspended
    assert [t.tenant_id for t in await tenancy.list_tenants(identity.admin)] == [
        "default", "initech"]
