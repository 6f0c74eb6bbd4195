"""Roles held on the server (issue 9, item 1): a privileged scope is issued only to a user
holding the matching role, re-checked at every use (admin API, refresh), and a role
removed is gone now (session version bumped through the outbox)."""

from __future__ import annotations

from typing import Any

import httpx

from tessera.application import accounts
from tessera.core.revocation import RevocationKind
from tessera.identity.compose import Identity
from tests.e2e.helpers import claims_of, refresh
from tests.support import REDIRECT, AppClient, TesseraDriver

PRIVILEGED = "openid api:read tessera:admin tessera:impersonate tessera:support tessera:events"


async def _admin_call(tessera: TesseraDriver, token: str, **data: str) -> httpx.Response:
    return await tessera.http.post("/admin/sessions", data=data,
                                   headers={"authorization": f"Bearer {token}"})


async def _console_client(tessera: TesseraDriver) -> AppClient:
    """A client that lists every privileged scope: the client only caps."""
    return await tessera.web_client(scope="api:read tessera:admin tessera:impersonate "
                                          "tessera:support tessera:events")


async def _login(tessera: TesseraDriver, app: AppClient, username: str) -> dict[str, Any]:
    tessera.http.cookies.clear()
    return await tessera.login_tokens(app, username=username, scope=PRIVILEGED)


async def _user(identity: Identity, username: str, tenant: str = "default") -> Any:
    async with identity.store.unit_of_work(read_only=True) as uow:
        return await uow.users.by_username(tenant, username)


async def test_a_user_without_a_role_gets_no_privileged_scope(
        tessera: TesseraDriver) -> None:
    app = await _console_client(tessera)
    await tessera.user("eve")
    tokens = await _login(tessera, app, "eve")
    assert tokens["scope"] == "api:read openid"
    assert claims_of(tokens["access_token"])["scope"] == "api:read openid"
    refused = await _admin_call(tessera, tokens["access_token"], action="revoke",
                                user_id="anyone")
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    # asking for it on refresh does not get it either
    again = await refresh(tessera, app, tokens["refresh_token"], scope="tessera:admin")
    assert again.status_code == 400 and again.json()["error"] == "invalid_scope"


async def test_delegated_scope_is_requested_and_client_allowed_and_user_entitled(
        tessera: TesseraDriver) -> None:
    app = await tessera.web_client(scope="api:read api:write tessera:admin "
                                         "tessera:impersonate tessera:support")
    await tessera.user("ivan", roles=("impersonator", "support"))
    tessera.http.cookies.clear()
    tokens = await tessera.login_tokens(app, username="ivan", scope="openid api:read "
                                        "tessera:admin tessera:impersonate")
    # asked: not api:write nor support; client: all; user: impersonate and support
    assert tokens["scope"] == "api:read openid tessera:impersonate"
    # asking beyond what the client may have stays an error (RFC 6749 §4.1.2.1)
    beyond = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
        "scope": "openid tessera:events", "state": "s"})
    assert "error=invalid_scope" in beyond.headers["location"]


async def test_roles_entitle_their_scopes(tessera: TesseraDriver) -> None:
    app = await _console_client(tessera)
    await tessera.user("tina", roles=("tenant-admin",))
    await tessera.user("pat", roles=("platform-admin",))
    await tessera.user("sam", roles=("support",))
    granted = {name: set((await _login(tessera, app, name))["scope"].split())
               for name in ("tina", "pat", "sam")}
    base = {"api:read", "openid"}
    assert granted["tina"] == base | {"tessera:admin", "tessera:support"}
    assert granted["pat"] == base | {"tessera:admin", "tessera:support", "tessera:events"}
    assert granted["sam"] == base | {"tessera:support"}


async def test_a_tenant_admin_administers_only_their_tenant(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await _console_client(tessera)
    other = await tessera.client(grants=("authorization_code",), scope="api:read",
                                 tenant="other")
    await tessera.user("tina", roles=("tenant-admin",))
    await tessera.user("alice")
    await tessera.user("olga", tenant="other")
    alice = await _login(tessera, app, "alice")
    tessera.http.cookies.clear()
    olga = await tessera.login_tokens(other, username="olga", scope="openid api:read")
    admin = (await _login(tessera, app, "tina"))["access_token"]

    for user in (olga, alice):
        sid = claims_of(user["access_token"])["sid"]
        response = await _admin_call(tessera, admin, action="revoke", sid=sid)
        assert response.status_code == 200, response.text
    assert response.json() == {"sessions": 1}  # alice, in tina's tenant
    async with identity.store.unit_of_work(read_only=True) as uow:
        olga_user = await uow.users.by_username("other", "olga")
        assert olga_user is not None
        assert len(await uow.sessions.active_for_user(olga_user.user_id)) == 1


async def test_a_platform_admin_reaches_every_tenant(tessera: TesseraDriver) -> None:
    app = await _console_client(tessera)
    other = await tessera.client(grants=("authorization_code",), scope="api:read",
                                 tenant="other")
    await tessera.user("pat", roles=("platform-admin",))
    olga_id = await tessera.user("olga", tenant="other")
    tessera.http.cookies.clear()
    await tessera.login_tokens(other, username="olga", scope="openid api:read")
    admin = (await _login(tessera, app, "pat"))["access_token"]
    response = await _admin_call(tessera, admin, action="revoke", user_id=olga_id)
    assert response.json() == {"sessions": 1}


async def test_a_role_removed_is_gone_now(tessera: TesseraDriver, identity: Identity) -> None:
    app = await _console_client(tessera)
    await tessera.user("tina", roles=("tenant-admin",))
    tokens = await _login(tessera, app, "tina")
    assert "tessera:admin" in tokens["scope"]
    ok = await _admin_call(tessera, tokens["access_token"], action="bump_version",
                           user_id="nobody")
    assert ok.status_code == 200
    async with identity.store.unit_of_work(read_only=True) as uow:
        seq = await uow.revocations.last_seq()
    tina = await _user(identity, "tina")
    assert await accounts.revoke_role(identity.admin, tina, "tenant-admin", actor="test")

    # published: the session's version moved on
    async with identity.store.unit_of_work(read_only=True) as uow:
        published = await uow.revocations.since(seq, limit=10)
    sid = claims_of(tokens["access_token"])["sid"]
    assert [(e.kind, e.key) for e in published] == [
        (RevocationKind.SESSION_VERSION_BUMPED, sid)]
    assert published[0].data["reason"] == "role_revoked"
    # the token in hand is dead at once, here and (by sv) at every verifier
    assert await tessera.introspect(app, tokens["access_token"]) == {"active": False}
    stale = await _admin_call(tessera, tokens["access_token"], action="bump_version",
                              user_id="nobody")
    assert stale.status_code == 401
    # the refresh works but without the privilege
    fresh = await refresh(tessera, app, tokens["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    assert "tessera:admin" not in fresh.json()["scope"]
    refused = await _admin_call(tessera, fresh.json()["access_token"], action="bump_version",
                                user_id="nobody")
    assert refused.status_code == 403


async def test_the_role_is_checked_at_use_not_read_from_the_token(
        tessera: TesseraDriver, identity: Identity) -> None:
    """A token minted while the role was held, whose session version is not (yet)
    bumped — e.g. the role removed by a direct store change — is refused at use."""
    app = await _console_client(tessera)
    await tessera.user("tina", roles=("tenant-admin",))
    tokens = await _login(tessera, app, "tina")
    tina = await _user(identity, "tina")
    async with identity.store.unit_of_work() as uow:
        assert await uow.roles.revoke(tina.user_id, "tenant-admin")  # no bump
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True
    response = await _admin_call(tessera, tokens["access_token"], action="revoke",
                                 user_id=tina.user_id)
    assert response.status_code == 403
    assert "role" in response.json()["error_description"]


async def test_a_service_admin_client_is_checked_at_use(tessera: TesseraDriver,
                                                        identity: Identity) -> None:
    service = await tessera.client(scope="tessera:admin", audiences=())
    token = (await tessera.token(service, grant_type="client_credentials")).json()[
        "access_token"]
    ok = await _admin_call(tessera, token, action="revoke", user_id="nobody")
    assert ok.status_code == 200
    from tessera.application import client_admin

    await client_admin.set_disabled(identity.admin, service.client_id, disabled=True)
    refused = await _admin_call(tessera, token, action="revoke", user_id="nobody")
    assert refused.status_code == 401
