"""Audited admin impersonation: a token exchange (RFC 8693) whose subject is a user id and
whose actor is an administrator's recent MFA access token; each one is a session of the
user of its own, listed, audited with both identities and revocable alone."""

from __future__ import annotations

from typing import Any

import httpx
import pyotp
import pytest

from tessera.application import accounts, admin
from tessera.core.acr import ACR_MFA, ACR_PASSWORD
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationKind
from tessera.identity.compose import Identity
from tessera.observability import events
from tessera.verifier._token import parse_claims
from tessera.verifier.decisions import ALLOWED_VALID, Decision, DecisionLog
from tests.e2e.helpers import (
    audit_rows,
    claims_of,
    form_fields,
    last_seq,
    published_kinds,
    refresh,
    verifier_verdict,
)
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
USER_ID = "urn:tessera:params:oauth:token-type:user-id"
PASSWORD = "correct horse battery"
AUDIENCE = "https://orders.internal"
ADMIN_SCOPE = "openid api:read tessera:impersonate"


async def _mfa_login(tessera: TesseraDriver, app: AppClient, username: str, secret: str,
                     clock: FixedClock, scope: str) -> dict[str, Any]:
    """The browser login with password then TOTP (the code step of /authorize)."""
    verifier, challenge = pkce_pair()
    page = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
        "scope": scope, "state": "s-123", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    asked = await tessera.http.post("/authorize", data=form_fields(page.text)
                                    | {"username": username, "password": PASSWORD})
    assert "Two-step verification" in asked.text, asked.text
    done = await tessera.http.post("/authorize", data=form_fields(asked.text) | {
        "totp_code": pyotp.TOTP(secret).at(int(clock.now()))})
    code = tessera._code_from(done)
    response = await tessera.token(app, grant_type="authorization_code", code=code,
                                   redirect_uri=REDIRECT, code_verifier=verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class World:
    def __init__(self, tessera: TesseraDriver, identity: Identity) -> None:
        self.tessera, self.identity = tessera, identity

    async def setup(self, clock: FixedClock) -> None:
        tessera = self.tessera
        self.web = await tessera.web_client(scope="api:read api:write tessera:impersonate")
        # the support console: administrators sign in to it and it exchanges their tokens
        self.support = await tessera.client(
            grants=("authorization_code", "refresh_token", EXCHANGE),
            scope="api:read api:write tessera:impersonate", audiences=(AUDIENCE,))
        self.admin_id = await tessera.user("root", roles=("impersonator",))
        self.user_id = await tessera.user("alice")
        self.root2_id = await tessera.user("root2", roles=("impersonator",))
        async with self.identity.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get(self.admin_id)
        assert user is not None
        secret = (await self.identity.totp.provision(user, actor="test")).secret
        self.totp_secret = secret
        self.admin_tokens = await _mfa_login(tessera, self.support, "root", secret, clock,
                                             ADMIN_SCOPE)
        # same browser, single sign-on: an MFA token without the impersonation scope
        self.unscoped = (await tessera.login_tokens(self.support, scope="openid api:read"))[
            "access_token"]
        tessera.http.cookies.clear()  # alice's own browser
        self.user_tokens = await tessera.login_tokens(self.web, username="alice")
        tessera.http.cookies.clear()

    async def impersonate(self, actor_token: str, user_id: str | None = None,
                          **extra: str) -> httpx.Response:
        return await self.tessera.token(self.support, **({
            "grant_type": EXCHANGE, "subject_token": user_id or self.user_id,
            "subject_token_type": USER_ID, "actor_token": actor_token,
            "actor_token_type": AT, "audience": AUDIENCE} | extra))


async def _world(tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> World:
    world = World(tessera, identity)
    await world.setup(clock)
    return world


async def test_admin_impersonates_in_a_session_of_its_own_revocable_alone(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    world = await _world(tessera, identity, clock)
    admin_claims = claims_of(world.admin_tokens["access_token"])
    assert admin_claims["acr"] == ACR_MFA and "tessera:impersonate" in admin_claims["scope"]
    response = await world.impersonate(world.admin_tokens["access_token"], scope="api:read")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == AT and body["scope"] == "api:read"
    assert "refresh_token" not in body and body["expires_in"] <= 300
    token = body["access_token"]
    got = claims_of(token)
    own = claims_of(world.user_tokens["access_token"])
    assert got["sub"] == world.user_id and got["act"] == {"sub": world.admin_id}
    assert got["sid"] not in (own["sid"], admin_claims["sid"]) and got["sv"] == 1
    assert got["acr"] == ACR_MFA and got["amr"][0] == "imp" and got["aud"] == AUDIENCE
    assert got["tid"] == own["tid"] and got["client_id"] == world.support.client_id

    # at most what the administrator holds, never impersonation itself
    assert (await world.impersonate(world.admin_tokens["access_token"])).json()[
        "scope"] == "api:read"
    for beyond in ("tessera:impersonate", "api:write"):
        refused = await world.impersonate(world.admin_tokens["access_token"], scope=beyond)
        assert refused.json()["error"] == "invalid_scope"

    async with identity.store.unit_of_work(read_only=True) as uow:
        sessions = {s.sid: s for s in await uow.sessions.active_for_user(world.user_id)}
    assert own["sid"] in sessions and got["sid"] in sessions
    assert sessions[got["sid"]].user_agent == f"impersonated by {world.admin_id}"
    assert sessions[got["sid"]].amr[0] == "imp"

    assert (await tessera.introspect(world.support, token))["active"] is True
    assert await admin.revoke(identity.admin, sid=got["sid"], reason="done", actor="test") == 1
    assert await tessera.introspect(world.support, token) == {"active": False}
    assert (await tessera.introspect(world.web, world.user_tokens["access_token"]))[
        "active"] is True
    assert (await tessera.introspect(world.support, world.admin_tokens["access_token"]))[
        "active"] is True


async def test_impersonation_is_refused_without_scope_mfa_or_recent_auth(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    world = await _world(tessera, identity, clock)
    # a password-only token with the scope: another admin without a second factor
    tessera.http.cookies.clear()
    pwd = (await tessera.login_tokens(world.support, username="root2",
                                      scope=ADMIN_SCOPE))["access_token"]
    assert claims_of(pwd)["acr"] == ACR_PASSWORD
    weak = await world.impersonate(pwd)
    assert weak.status_code == 400 and weak.json()["error"] == "invalid_grant"
    assert "insufficient_user_authentication" in weak.json()["error_description"]

    unscoped = await world.impersonate(world.unscoped)
    assert unscoped.json()["error"] == "invalid_grant"
    assert "tessera:impersonate" in unscoped.json()["error_description"]

    missing_user = await world.impersonate(world.admin_tokens["access_token"], "nobody")
    assert missing_user.json()["error"] == "invalid_grant"
    other_tenant = await admin.create_user(identity.admin, username="eve", password=PASSWORD,
                                           tenant_id="acme")
    elsewhere = await world.impersonate(world.admin_tokens["access_token"],
                                        other_tenant.user_id)
    assert elsewhere.json()["error"] == "invalid_grant"
    myself = await world.impersonate(world.admin_tokens["access_token"], world.admin_id)
    assert myself.json()["error"] == "invalid_grant"
    wrong_type = await world.impersonate(world.admin_tokens["access_token"],
                                         actor_token_type="urn:x")
    assert wrong_type.json()["error"] == "invalid_request"
    not_allowed = await tessera.client(scope="api:read", audiences=(AUDIENCE,))
    response = await tessera.token(not_allowed, grant_type=EXCHANGE,
                                   subject_token=world.user_id, subject_token_type=USER_ID,
                                   actor_token=world.admin_tokens["access_token"],
                                   actor_token_type=AT, audience=AUDIENCE)
    assert response.json()["error"] == "unauthorized_client"

    # fifteen minutes on, a refreshed token (same auth_time) no longer suffices
    clock.advance(901)
    fresh = await refresh(tessera, world.support, world.admin_tokens["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    stale = await world.impersonate(fresh.json()["access_token"])
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
    assert "authenticate again" in stale.json()["error_description"]
    async with identity.store.unit_of_work(read_only=True) as uow:
        sessions = await uow.sessions.active_for_user(world.user_id)
    assert [s.amr for s in sessions if "imp" in s.amr] == []  # nothing was opened


async def test_impersonation_is_audited_with_both_identities_and_no_tokens(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    world = await _world(tessera, identity, clock)
    actor_token = world.admin_tokens["access_token"]
    token = (await world.impersonate(actor_token)).json()["access_token"]
    got = claims_of(token)
    await identity.audit.aclose()
    [opened] = await audit_rows(identity, events.SESSION_IMPERSONATED)
    assert opened.fields["user_id"] == world.user_id
    assert opened.fields["actor"] == world.admin_id and opened.fields["sid"] == got["sid"]
    assert opened.fields["actor_sid_hash"] and opened.fields["client_id"] == world.support.client_id
    [exchanged] = await audit_rows(identity, events.TOKEN_EXCHANGED)
    assert exchanged.fields["impersonation"] is True
    assert (exchanged.fields["user_id"], exchanged.fields["actor"]) == (
        world.user_id, world.admin_id)
    for row in (opened, exchanged):
        assert actor_token not in str(row.fields) and token not in str(row.fields)

    # every use: the SDK's decision event names the subject and the admin acting
    verified = parse_claims(got, kid="k", alg="RS256")
    event = DecisionLog("orders", clock=clock).event(
        Decision(True, ALLOWED_VALID, 200, 0.001, token=verified))
    assert (event["user_id"], event["actor"]) == (world.user_id, world.admin_id)
    plain = DecisionLog("orders", clock=clock).event(Decision(
        True, ALLOWED_VALID, 200, 0.001,
        token=parse_claims(claims_of(world.user_tokens["access_token"]), kid="k",
                           alg="RS256")))
    assert "actor" not in plain


async def test_impersonation_can_be_turned_off(tessera: TesseraDriver, identity: Identity,
                                               clock: FixedClock) -> None:
    from dataclasses import replace

    world = await _world(tessera, identity, clock)
    grant = next(g for g in identity.token._grants.values() if g.grant_type == EXCHANGE)
    imp = grant._impersonation  # type: ignore[attr-defined]
    imp.policy = replace(imp.policy, enabled=False)
    off = await world.impersonate(world.admin_tokens["access_token"])
    assert off.status_code == 400 and off.json()["error"] == "invalid_request"


# -- safe by construction (issue 9, item 4) ----------------------------------------------


async def test_only_a_holder_of_the_impersonator_role_impersonates(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    world = await _world(tessera, identity, clock)
    # without the role, the scope is not even issued, whatever the client lists
    eve_id = await tessera.user("eve")
    async with identity.store.unit_of_work(read_only=True) as uow:
        eve = await uow.users.get(eve_id)
    assert eve is not None
    secret = (await identity.totp.provision(eve, actor="test")).secret
    tessera.http.cookies.clear()
    tokens = await _mfa_login(tessera, world.support, "eve", secret, clock, ADMIN_SCOPE)
    assert "tessera:impersonate" not in tokens["scope"]
    assert (await world.impersonate(tokens["access_token"])).json()["error"] == "invalid_grant"

    # the role is checked at use: gone from the store, the token's scope is not enough
    async with identity.store.unit_of_work() as uow:
        assert await uow.roles.revoke(world.admin_id, "impersonator")  # no version bump
    refused = await world.impersonate(world.admin_tokens["access_token"])
    assert refused.status_code == 400 and "impersonator role" in refused.json()[
        "error_description"]


async def test_removing_the_role_ends_running_impersonations(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    world = await _world(tessera, identity, clock)
    token = (await world.impersonate(world.admin_tokens["access_token"])).json()[
        "access_token"]
    assert (await tessera.introspect(world.support, token))["active"] is True
    async with identity.store.unit_of_work(read_only=True) as uow:
        root = await uow.users.get(world.admin_id)
    assert root is not None
    await accounts.revoke_role(identity.admin, root, "impersonator", actor="test")
    assert await tessera.introspect(world.support, token) == {"active": False}
    assert await verifier_verdict(identity, token, AUDIENCE) == "session_revoked"


async def test_scopes_are_capped_by_both_users_entitlements(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    world = await _world(tessera, identity, clock)
    desk = await tessera.client(grants=("authorization_code", EXCHANGE),
                                scope="api:read tessera:admin tessera:impersonate",
                                audiences=(AUDIENCE,))
    async with identity.store.unit_of_work(read_only=True) as uow:
        root = await uow.users.get(world.admin_id)
    assert root is not None
    await accounts.grant_role(identity.admin, root, "tenant-admin", actor="test")
    tina_id = await tessera.user("tina", roles=("tenant-admin",))
    tessera.http.cookies.clear()
    clock.advance(30)
    admin_tokens = await _mfa_login(tessera, desk, "root", world.totp_secret, clock,
                                    "openid api:read tessera:admin tessera:impersonate")
    assert "tessera:admin" in admin_tokens["scope"]

    async def as_(user_id: str, scope: str) -> httpx.Response:
        return await tessera.token(desk, grant_type=EXCHANGE, subject_token=user_id,
                                   subject_token_type=USER_ID,
                                   actor_token=admin_tokens["access_token"],
                                   actor_token_type=AT, audience=AUDIENCE, scope=scope)

    # alice holds no role: the administrator's privilege does not rub off on her session
    assert (await as_(world.user_id, "tessera:admin")).json()["error"] == "invalid_scope"
    assert (await as_(world.user_id, "api:read")).json()["scope"] == "api:read"
    # tina is a tenant-admin too: both are entitled
    assert (await as_(tina_id, "api:read tessera:admin")).json()[
        "scope"] == "api:read tessera:admin"


async def test_an_impersonation_ends_with_the_administrators_session_or_token(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    world = await _world(tessera, identity, clock)
    admin_token = world.admin_tokens["access_token"]
    admin_sid = claims_of(admin_token)["sid"]

    async def impersonation() -> tuple[str, str]:
        token = (await world.impersonate(admin_token)).json()["access_token"]
        assert (await tessera.introspect(world.support, token))["active"] is True
        return token, claims_of(token)["sid"]

    # revoking the administrator's access token (RFC 7009) ends it
    token, sid = await impersonation()
    seq = await last_seq(identity)
    revoked = await tessera.http.post("/revoke", data={"token": admin_token},
                                      auth=world.support.auth)  # type: ignore[arg-type]
    assert revoked.status_code == 200
    assert await tessera.introspect(world.support, token) == {"active": False}
    assert (RevocationKind.SESSION_REVOKED, sid) in await published_kinds(identity, seq)

    # bumping or revoking the administrator's session ends it
    for end in ("bump", "revoke"):
        tessera.http.cookies.clear()
        clock.advance(30)
        world.admin_tokens = await _mfa_login(tessera, world.support, "root",
                                              world.totp_secret, clock, ADMIN_SCOPE)
        admin_token = world.admin_tokens["access_token"]
        admin_sid = claims_of(admin_token)["sid"]
        token, sid = await impersonation()
        if end == "bump":
            await admin.bump_version(identity.admin, sid=admin_sid, reason="test", actor="test")
        else:
            await admin.revoke(identity.admin, sid=admin_sid, reason="test", actor="test")
        assert await tessera.introspect(world.support, token) == {"active": False}
        assert await verifier_verdict(identity, token, AUDIENCE) == "session_revoked"
    # the user's own session is untouched throughout
    assert (await tessera.introspect(world.web, world.user_tokens["access_token"]))[
        "active"] is True


async def test_an_impersonation_never_outlives_the_administrators_token(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    world = await _world(tessera, identity, clock)
    admin_exp = claims_of(world.admin_tokens["access_token"])["exp"]
    clock.advance(admin_exp - clock.now() - 100)  # 100 s left of the admin's token
    body = (await world.impersonate(world.admin_tokens["access_token"])).json()
    assert claims_of(body["access_token"])["exp"] == admin_exp
    assert body["expires_in"] == 100
    clock.advance(97)  # nearly expired: refused rather than a token of a few seconds
    late = await world.impersonate(world.admin_tokens["access_token"])
    assert late.json()["error"] == "invalid_grant"


async def test_the_console_names_the_administrator(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    world = await _world(tessera, identity, clock)
    sid = claims_of((await world.impersonate(world.admin_tokens["access_token"])).json()[
        "access_token"])["sid"]
    identity.settings.console.required_acr = "urn:tessera:acr:mfa"
    await tessera.user("ops", roles=("platform-admin",))
    async with identity.store.unit_of_work(read_only=True) as uow:
        ops = await uow.users.by_username("default", "ops")
    assert ops is not None
    secret = (await identity.totp.provision(ops, actor="test")).secret
    tessera.http.cookies.clear()
    form = await tessera.http.get("/console/login")
    signed_in = await tessera.http.post("/console/login", data=form_fields(form.text) | {
        "username": "ops", "password": PASSWORD,
        "totp_code": pyotp.TOTP(secret).at(int(clock.now()))})
    assert signed_in.status_code == 303, signed_in.text
    page = await tessera.http.get(f"/console/sessions/{sid}")
    assert page.status_code == 200
    assert "<span id=acting_admin>root</span>" in page.text
    listing = await tessera.http.get("/console/sessions", params={"user_id": world.user_id})
    assert "impersonated by root" in listing.text


async def test_only_a_token_of_a_users_session_is_looked_up_as_an_actor(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Impersonation needs an actor token of a user's session (``check_actor``), so the
    revocation of a token without ``sid`` (client credentials) skips the lookup of
    impersonations opened with it — every machine token's revocation paid it — while
    an administrator's token is still looked up and its impersonation ended."""
    from tessera.store.sql.repos import SqlSessionRepo

    world = await _world(tessera, identity, clock)
    lookups: list[str | None] = []
    original = SqlSessionRepo.acting_under

    async def counted(self: SqlSessionRepo, *, sid: str | None = None,
                      jti: str | None = None) -> Any:
        lookups.append(jti)
        return await original(self, sid=sid, jti=jti)

    monkeypatch.setattr(SqlSessionRepo, "acting_under", counted)
    service = await tessera.client(grants=("client_credentials",))
    machine = (await tessera.token(service, grant_type="client_credentials")).json()[
        "access_token"]
    assert "sid" not in claims_of(machine)
    assert (await tessera.http.post("/revoke", data={"token": machine},
                                    auth=service.auth)).status_code == 200  # type: ignore[arg-type]
    assert await tessera.introspect(service, machine) == {"active": False}
    assert lookups == []

    admin_token = world.admin_tokens["access_token"]
    token = (await world.impersonate(admin_token)).json()["access_token"]
    assert (await tessera.http.post("/revoke", data={"token": admin_token},
                                    auth=world.support.auth)).status_code == 200  # type: ignore[arg-type]
    assert lookups == [claims_of(admin_token)["jti"]]
    assert await tessera.introspect(world.support, token) == {"active": False}
