"""Tenant isolation at every entry point (issue 9, item 2): one matrix, every endpoint ×
a caller from the other tenant, on SQLite and PostgreSQL.

Tenant ``acme`` has a web client (A) and alice, signed in; tenant ``globex`` has a client
(B) that is as privileged as a client can be — every grant, the admin and impersonation
scopes, and token-exchange trust in acme's audience — and its own administrator
(mallory: tenant-admin and impersonator, signed in with a second factor). Whatever B or
mallory try with acme's credentials gets nothing, and alice's session, tokens and user
are untouched afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tessera.core.clock import FixedClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.store.sql import SqlStore
from tests.conftest import ISSUER, make_identity, make_settings
from tests.e2e.helpers import claims_of, form_fields
from tests.e2e.test_impersonation import _mfa_login
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
RT = "urn:ietf:params:oauth:token-type:refresh_token"
USER_ID = "urn:tessera:params:oauth:token-type:user-id"
ACME_API, GLOBEX_API = "https://api.acme.example", "https://api.globex.example"
PASSWORD = "correct horse battery"


@dataclass
class World:
    tessera: TesseraDriver
    identity: Identity
    a: AppClient
    """acme's web client."""
    b: AppClient
    """globex's client: every grant, admin and impersonation scopes, trusts ACME_API."""
    alice_id: str
    alice: dict[str, Any]
    """alice's token response (access, refresh, id token) from A."""
    alice_for_b: str
    """An access token of alice's (from A) whose audience names B's client_id."""
    alice_code: str
    """An authorization code of alice's for A, not redeemed."""
    alice_verifier: str
    alice_cookies: dict[str, str]
    mallory: dict[str, Any]
    """globex's tenant-admin and impersonator, via B, with a second factor."""
    mallory_cookies: dict[str, str]
    bob: dict[str, Any]
    """A plain globex user's tokens via B."""

    @property
    def http(self) -> httpx.AsyncClient:
        return self.tessera.http

    def browser(self, cookies: dict[str, str]) -> None:
        self.http.cookies.clear()
        self.http.cookies.update(cookies)

    async def alice_untouched(self) -> None:
        """alice's session, refresh family and tokens still work for acme's client."""
        access = await self.tessera.introspect(self.a, self.alice["access_token"])
        assert access["active"] is True and access["sub"] == self.alice_id
        refresh = await self.tessera.introspect(self.a, self.alice["refresh_token"],
                                                token_type_hint="refresh_token")
        assert refresh["active"] is True
        async with self.identity.store.unit_of_work(read_only=True) as uow:
            sessions = await uow.sessions.active_for_user(self.alice_id)
            user = await uow.users.get(self.alice_id)
        assert claims_of(self.alice["access_token"])["sid"] in {s.sid for s in sessions}
        assert user is not None and not user.disabled


async def _code(tessera: TesseraDriver, app: AppClient, challenge: str) -> str:
    return await tessera.authorize_code(app, challenge=challenge, scope="openid api:read")


async def _build(tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> World:
    b = await tessera.client(grants=("authorization_code", "refresh_token", EXCHANGE,
                                     "client_credentials"),
                             scope="api:read tessera:admin tessera:impersonate",
                             audiences=(GLOBEX_API, ISSUER), tenant="globex",
                             subject_audiences=(ACME_API,))
    a = await tessera.client(grants=("authorization_code", "refresh_token"), scope="api:read",
                             audiences=(ACME_API, b.client_id), tenant="acme")
    alice_id = await tessera.user("alice", tenant="acme")
    alice = await tessera.login_tokens(a, scope="openid api:read")
    verifier, challenge = pkce_pair()
    for_b = await tessera.token(a, grant_type="authorization_code",
                                code=await _code(tessera, a, challenge), redirect_uri=REDIRECT,
                                code_verifier=verifier, resource=b.client_id)
    assert for_b.status_code == 200, for_b.text
    verifier, challenge = pkce_pair()
    code = await _code(tessera, a, challenge)
    alice_cookies = dict(tessera.http.cookies)

    tessera.http.cookies.clear()
    await tessera.user("mallory", tenant="globex", roles=("tenant-admin", "impersonator"))
    async with identity.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_username("globex", "mallory")
    assert user is not None
    secret = (await identity.totp.provision(user, actor="test")).secret
    mallory = await _mfa_login(tessera, b, "mallory", secret, clock,
                               "openid api:read tessera:admin tessera:impersonate")
    assert {"tessera:admin", "tessera:impersonate"} <= set(mallory["scope"].split())
    mallory_cookies = dict(tessera.http.cookies)

    tessera.http.cookies.clear()
    await tessera.user("bob", tenant="globex")
    bob = await tessera.login_tokens(b, username="bob", scope="openid api:read")
    return World(tessera, identity, a, b, alice_id, alice, for_b.json()["access_token"],
                 code, verifier, alice_cookies, mallory, mallory_cookies, bob)


@pytest.fixture
async def world(any_store: SqlStore, tmp_path: Path, clock: FixedClock
                ) -> AsyncIterator[World]:
    identity = await make_identity(make_settings(tmp_path), any_store, clock)
    transport = httpx.ASGITransport(app=build_app(identity))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield await _build(TesseraDriver(identity, http), identity, clock)
    await identity.audit.aclose()


def _redirect_query(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)


# -- the entry points, each tried from globex against acme ---------------------------------

async def sso(w: World) -> None:
    """alice's browser session is no session for globex's client."""
    w.browser(w.alice_cookies)
    params = {"response_type": "code", "client_id": w.b.client_id, "redirect_uri": REDIRECT,
              "scope": "openid api:read", "state": "s", "code_challenge": pkce_pair()[1],
              "code_challenge_method": "S256"}
    silent = _redirect_query(await w.http.get("/authorize", params=params | {"prompt": "none"}))
    assert silent["error"] == ["login_required"] and "code" not in silent
    page = await w.http.get("/authorize", params=params)
    assert page.status_code == 200 and "password" in page.text  # asked to sign in
    # and alice's acme password does not sign in to globex
    tried = await w.http.post("/authorize", data=form_fields(page.text)
                              | {"username": "alice", "password": PASSWORD})
    assert tried.status_code == 401


async def authorization_code(w: World) -> None:
    response = await w.tessera.token(w.b, grant_type="authorization_code", code=w.alice_code,
                                     redirect_uri=REDIRECT, code_verifier=w.alice_verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def refresh_token(w: World) -> None:
    response = await w.tessera.token(w.b, grant_type="refresh_token",
                                     refresh_token=w.alice["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def exchange_subject(w: World) -> None:
    """Even with exchange trust in acme's audience, and with a token naming B."""
    for subject, kind in ((w.alice["access_token"], AT), (w.alice_for_b, AT),
                          (w.alice["refresh_token"], RT)):
        response = await w.tessera.token(w.b, grant_type=EXCHANGE, subject_token=subject,
                                         subject_token_type=kind, audience=GLOBEX_API)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def exchange_actor(w: World) -> None:
    """An actor token of acme, though it names B in its audience."""
    assert w.b.client_id in claims_of(w.alice_for_b)["aud"]
    response = await w.tessera.token(w.b, grant_type=EXCHANGE,
                                     subject_token=w.bob["access_token"],
                                     subject_token_type=AT, actor_token=w.alice_for_b,
                                     actor_token_type=AT, audience=GLOBEX_API)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert "actor_token" in response.json()["error_description"]


async def impersonation(w: World) -> None:
    response = await w.tessera.token(w.b, grant_type=EXCHANGE, subject_token=w.alice_id,
                                     subject_token_type=USER_ID,
                                     actor_token=w.mallory["access_token"],
                                     actor_token_type=AT, audience=GLOBEX_API)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    async with w.identity.store.unit_of_work(read_only=True) as uow:
        sessions = await uow.sessions.active_for_user(w.alice_id)
    assert all("imp" not in s.amr for s in sessions)


async def introspection(w: World) -> None:
    for token in (w.alice["access_token"], w.alice_for_b, w.alice["refresh_token"]):
        assert await w.tessera.introspect(w.b, token) == {"active": False}


async def revocation(w: World) -> None:
    """RFC 7009 §2.2: answered like an unknown token; nothing is revoked."""
    for token in (w.alice["access_token"], w.alice_for_b, w.alice["refresh_token"]):
        response = await w.http.post("/revoke", data={"token": token},
                                     auth=w.b.auth)  # type: ignore[arg-type]
        assert response.status_code == 200 and response.json() == {}
    assert (await w.tessera.introspect(w.a, w.alice_for_b))["active"] is True


async def admin_api(w: World) -> None:
    """globex's tenant-admin and globex's admin service reach nothing in acme: the same
    answer as for an unknown target."""
    service = await w.tessera.token(w.b, grant_type="client_credentials",
                                    scope="tessera:admin", resource=ISSUER)
    assert service.status_code == 200, service.text
    sid = claims_of(w.alice["access_token"])["sid"]
    for token in (w.mallory["access_token"], service.json()["access_token"]):
        for action in ("revoke", "bump_version"):
            for target in ({"sid": sid}, {"user_id": w.alice_id}):
                response = await w.http.post("/admin/sessions", data={"action": action,
                                                                      **target},
                                             headers={"authorization": f"Bearer {token}"})
                assert response.status_code == 200, response.text
                assert response.json() == {"sessions": 0}


async def logout(w: World) -> None:
    """RP-initiated logout naming globex's client with acme's id_token_hint."""
    w.browser(w.mallory_cookies)
    response = await w.http.get("/logout", params={"id_token_hint": w.alice["id_token"],
                                                   "client_id": w.b.client_id})
    assert response.status_code in (200, 400), response.text


async def console(w: World) -> None:
    """mallory, globex's tenant-admin, in the console: acme is invisible and untouchable."""
    w.identity.settings.console.required_acr = "urn:tessera:acr:mfa"
    w.browser(w.mallory_cookies)
    sid = claims_of(w.alice["access_token"])["sid"]
    listing = await w.http.get("/console/sessions", params={"tenant": "acme", "all": "1"})
    assert listing.status_code == 200, listing.text
    assert sid not in listing.text and w.alice_id not in listing.text
    assert (await w.http.get(f"/console/sessions/{sid}")).status_code == 404
    audit = await w.http.get("/console/audit", params={"tenant": "acme"})
    assert audit.status_code == 200 and w.alice_id not in audit.text
    journey = await w.http.get("/console/journey", params={"needle": sid})
    assert journey.status_code == 200 and "0 events naming" in journey.text
    csrf = form_fields(listing.text).get("csrf_token")
    assert csrf
    for kind, target in (("session", sid), ("user", w.alice_id), ("tenant", "acme")):
        response = await w.http.post("/console/revoke", data={
            "kind": kind, "target": target, "confirm": "yes", "csrf_token": csrf})
        assert response.status_code == 404, (kind, response.text)


ENTRY_POINTS: dict[str, Callable[[World], Awaitable[None]]] = {
    f.__name__: f for f in (sso, authorization_code, refresh_token, exchange_subject,
                            exchange_actor, impersonation, introspection, revocation,
                            admin_api, logout, console)}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
async def test_a_caller_of_another_tenant_gets_nothing(world: World, entry: str) -> None:
    await ENTRY_POINTS[entry](world)
    await world.alice_untouched()


async def test_the_same_calls_work_inside_the_tenant(world: World) -> None:
    """The control: acme's own client does get what globex's was refused."""
    w = world
    assert (await w.tessera.introspect(w.a, w.alice_for_b))["active"] is True
    ok = await w.tessera.token(w.a, grant_type="authorization_code", code=w.alice_code,
                               redirect_uri=REDIRECT, code_verifier=w.alice_verifier)
    assert ok.status_code == 200, ok.text
    w.browser(w.alice_cookies)
    params = {"response_type": "code", "client_id": w.a.client_id, "redirect_uri": REDIRECT,
              "scope": "openid api:read", "state": "s", "code_challenge": pkce_pair()[1],
              "code_challenge_method": "S256", "prompt": "none"}
    assert "code" in _redirect_query(await w.http.get("/authorize", params=params))
    # and globex's own administrator reaches globex
    bob_sid = claims_of(w.bob["access_token"])["sid"]
    revoked = await w.http.post("/admin/sessions", data={"action": "revoke", "sid": bob_sid},
                                headers={"authorization": f"Bearer {w.mallory['access_token']}"})
    assert revoked.json() == {"sessions": 1}
