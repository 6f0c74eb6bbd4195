"""Every path that ends a session emits both an OIDC back-channel logout token (to the
relying party of the session) and an SSF ``session-revoked`` SET (to a stream covering
the user), each validated by an independent receiver (joserfc against the JWKS)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tessera.application import accounts, admin, tenancy
from tests.e2e.helpers import admin_client, claims_of, client_token, refresh, revoke
from tests.e2e.signals_world import LOOP, RECEIVERS, World, pump
from tests.support import AppClient

Ender = Callable[[World, AppClient, dict[str, Any], str], Awaitable[None]]


async def _rp_logout(w: World, app: AppClient, tokens: dict[str, Any], user_id: str) -> None:
    response = await w.tessera.http.get("/logout", params={"id_token_hint": tokens["id_token"]})
    assert response.status_code in (200, 303), response.text


async def _revoke_refresh(w: World, app: AppClient, tokens: dict[str, Any],
                          user_id: str) -> None:
    assert (await revoke(w.tessera, app, tokens["refresh_token"])).status_code == 200


async def _admin_revoke(w: World, app: AppClient, tokens: dict[str, Any], user_id: str) -> None:
    sid = claims_of(tokens["access_token"])["sid"]
    assert await admin.revoke(w.identity.admin, sid=sid, reason="admin", actor="cli") == 1


async def _admin_api(w: World, app: AppClient, tokens: dict[str, Any], user_id: str) -> None:
    token = await client_token(w.tessera, await admin_client(w.tessera),
                               scope="tessera:admin")
    response = await w.tessera.http.post(
        "/admin/sessions", data={"action": "revoke", "user_id": user_id},
        headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json() == {"sessions": 1}, response.text


async def _console_family(w: World, app: AppClient, tokens: dict[str, Any],
                          user_id: str) -> None:
    families = await _families(w, claims_of(tokens["access_token"])["sid"])
    assert await admin.revoke_family(w.identity.admin, families[0], reason="console",
                                     actor="console")


async def _families(w: World, sid: str) -> list[str]:
    async with w.identity.store.unit_of_work(read_only=True) as uow:
        return [f.family_id for f in await uow.refresh.families_for_session(sid)]


async def _user_disable(w: World, app: AppClient, tokens: dict[str, Any],
                        user_id: str) -> None:
    user = await _user(w, user_id)
    assert await accounts.set_disabled(w.identity.admin, user, disabled=True, actor="admin") == 1


async def _password_change(w: World, app: AppClient, tokens: dict[str, Any],
                           user_id: str) -> None:
    user = await _user(w, user_id)
    assert await accounts.set_password(w.identity.admin, user, "another long password",
                                       actor="admin") == 1


async def _user(w: World, user_id: str) -> Any:
    async with w.identity.store.unit_of_work(read_only=True) as uow:
        return await uow.users.get(user_id)


async def _tenant_suspend(w: World, app: AppClient, tokens: dict[str, Any],
                          user_id: str) -> None:
    assert await tenancy.suspend_tenant(w.identity.admin, "default", actor="cli") == 1


async def _refresh_reuse(w: World, app: AppClient, tokens: dict[str, Any],
                         user_id: str) -> None:
    first = await refresh(w.tessera, app, tokens["refresh_token"])
    assert first.status_code == 200
    w.identity.clock.advance(120)  # past the retry grace
    second = await refresh(w.tessera, app, tokens["refresh_token"])
    assert second.json()["error"] == "invalid_grant"


async def _global_revocation(w: World, app: AppClient, tokens: dict[str, Any],
                             user_id: str) -> None:
    token = await client_token(w.tessera, await admin_client(w.tessera),
                               scope="tessera:admin")
    response = await w.tessera.http.post(
        "/global-token-revocation", headers={"authorization": f"Bearer {token}"},
        json={"sub_id": {"format": "iss_sub", "iss": LOOP, "sub": user_id}})
    assert response.status_code == 204, response.text


PATHS: dict[str, Ender] = {
    "rp_initiated_logout": _rp_logout,
    "revoke_refresh_token": _revoke_refresh,
    "admin_revoke_cli": _admin_revoke,
    "admin_api": _admin_api,
    "console_revoke_family": _console_family,
    "user_disable": _user_disable,
    "password_change": _password_change,
    "tenant_suspend": _tenant_suspend,
    "refresh_reuse": _refresh_reuse,
    "global_revocation": _global_revocation,
}


@pytest.mark.parametrize("path", sorted(PATHS))
async def test_every_session_end_emits_a_logout_token_and_session_revoked(
        world: World, path: str) -> None:
    app, rp = await world.relying_party("rp1")
    _stream, receiver, _token = await world.push_stream("siem")
    user_id = await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    sid = claims_of(tokens["access_token"])["sid"]
    await pump(world.identity)
    assert rp.logouts == [] and receiver.of_type("session-revoked") == []

    await PATHS[path](world, app, tokens, user_id)
    await pump(world.identity)

    assert rp.rejected == [] and receiver.rejected == []
    assert len(rp.logouts) == 1, rp.logouts
    logout = rp.logouts[0]
    assert logout.header["typ"] == "logout+jwt"
    assert logout.claims["sid"] == sid and logout.claims["sub"] == user_id
    assert logout.claims["aud"] == app.client_id and "nonce" not in logout.claims
    revoked = receiver.of_type("session-revoked")
    assert len(revoked) == 1, [r.event_type for r in receiver.received]
    sub_id = revoked[0].claims["sub_id"]
    assert sub_id["session"] == {"format": "opaque", "id": sid}
    assert sub_id["user"] == {"format": "iss_sub", "iss": LOOP, "sub": user_id}


async def test_a_client_without_refresh_tokens_hears_the_logout_too(world: World) -> None:
    client, secret = await admin.create_client(
        world.identity.admin, name="id-only", grants=("authorization_code",),
        redirect_uris=("https://app.example/cb",), scope="api:read",
        audiences=("https://api.example",), backchannel_logout_uri=f"{RECEIVERS}/rp/idonly/logout")
    from tests.signals_receivers import RelyingParty

    party = RelyingParty(client.client_id, LOOP, world.jwks, world.identity.clock.now)
    world.rps["idonly"] = party
    app = AppClient(client.client_id, secret)
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    assert "refresh_token" not in tokens
    await _rp_logout(world, app, tokens, "")
    await pump(world.identity)
    [logout] = party.logouts
    assert logout.claims["sid"] == claims_of(tokens["access_token"])["sid"]
