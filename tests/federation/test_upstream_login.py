"""Sign-in through a real upstream OpenID provider (node-oidc-provider on loopback):
normalised claims in Tessera's tokens, JIT provisioning, step-up back to the upstream,
the upstream's back-channel logout reaching a verifier, a changed profile bumping the
session version."""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import urljoin

import httpx

from tessera.core.acr import ACR_MFA, ACR_PASSWORD
from tessera.core.clock import SystemClock
from tessera.verifier import Denied, VerificationPolicy
from tessera.verifier.driver import Verifier
from tessera.verifier.jwks import JwksCache
from tessera.verifier.revocation import RevocationFollower, RevocationState
from tessera.verifier.revocation.sources import BusSource
from tests.federation.conftest import Fed, Upstream
from tests.federation.flows import AUDIENCE, add_upstream, sign_in, web_app
from tests.system._procs import poll
from tests.tokens import claims_of

PROPAGATION_BOUND = 3.0


async def test_sign_in_step_up_and_backchannel_logout(fed: Fed, upstream: Upstream) -> None:
    await add_upstream(fed, upstream)
    app = await web_app(fed.identity)
    state = RevocationState()
    follower = RevocationFollower(state, BusSource(fed.identity.bus, heartbeat=0.05),
                                  clock=SystemClock())
    verifier = Verifier(VerificationPolicy(issuer=fed.url, audience=AUDIENCE),
                        jwks=JwksCache(fed.url, clock=SystemClock()), clock=SystemClock(),
                        state=state)
    follower.start()
    try:
        await asyncio.wait_for(follower.synced(), 5)
        async with httpx.AsyncClient(timeout=10) as browser:
            # 1. sign in through the upstream (idp_hint skips the chooser): JIT user
            tokens = await sign_in(fed, app, browser, idp_hint="corp")
            id_token = claims_of(tokens["id_token"])
            assert id_token["email"] == "alice@corp.example"
            assert id_token["email_verified"] is True
            assert id_token["name"] == "Alice Upstream"
            assert id_token["groups"] == ["engineering", "helpdesk"]
            assert id_token["roles"] == ["support"]
            assert id_token["department"] == "R&D"
            assert id_token["employee_id"] == "E-1001"
            assert id_token["acr"] == ACR_PASSWORD
            assert "fed" in id_token["amr"]  # type: ignore[operator]
            userinfo = await browser.get(f"{fed.url}/userinfo", headers={
                "authorization": f"Bearer {tokens['access_token']}"})
            assert userinfo.json()["department"] == "R&D"
            first = await verifier.verify(tokens["access_token"])
            assert first.sid == id_token["sid"]

            # 2. a route needing MFA: back to the upstream with acr_values, one-time code
            stepped = await sign_in(fed, app, browser, otp="246810",
                                    acr_values=ACR_MFA)
            stepped_claims = claims_of(stepped["id_token"])
            assert stepped_claims["acr"] == ACR_MFA
            assert stepped_claims["sid"] == id_token["sid"], "same session, stepped up"
            assert "otp" in stepped_claims["amr"]  # type: ignore[operator]

            # 3. the user signs out at the upstream: its back-channel logout revokes the
            #    session and the verifier rejects within the propagation bound
            end = await browser.get(f"{upstream.issuer}/session/end")
            assert end.status_code == 200, end.text
            action = urljoin(str(end.url), _attr(end.text, "action"))
            xsrf = _attr(end.text, 'name="xsrf" value')
            started = time.monotonic()
            confirmed = await browser.post(action, data={"xsrf": xsrf, "logout": "yes"})
            assert confirmed.status_code in (200, 303), confirmed.text

            async def rejected() -> bool:
                try:
                    await verifier.verify(stepped["access_token"])
                except Denied:
                    return True
                return False

            await poll(rejected, timeout=PROPAGATION_BOUND, interval=0.01,
                       what="the verifier rejects the upstream-logged-out token")
            assert time.monotonic() - started < PROPAGATION_BOUND
    finally:
        await follower.aclose()
        await verifier.aclose()


def _attr(html: str, name: str) -> str:
    marker = f'{name}="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


async def test_changed_upstream_claims_bump_the_session_version(fed: Fed,
                                                               upstream: Upstream) -> None:
    """The upstream drops a group: at the next login the mapped role goes, the session
    version is bumped and tokens with the old claims are stale at every verifier."""
    from tests.e2e.helpers import verifier_verdict

    await add_upstream(fed, upstream)
    app = await web_app(fed.identity)
    original = dict(upstream.accounts["alice"]["claims"])
    try:
        async with httpx.AsyncClient(timeout=10) as browser:
            before = await sign_in(fed, app, browser, idp_hint="corp")
            assert claims_of(before["id_token"])["roles"] == ["support"]
            assert await verifier_verdict(fed.identity, before["access_token"],
                                          AUDIENCE) is None
            upstream.set_claims("alice", {**original, "groups": ["engineering"],
                                          "department": "Platform"})
            after = await sign_in(fed, app, browser, prompt="login")
        claims = claims_of(after["id_token"])
        assert "roles" not in claims and claims["department"] == "Platform"
        assert claims_of(after["access_token"])["sv"] > claims_of(before["access_token"])["sv"]
        assert await verifier_verdict(fed.identity, before["access_token"],
                                      AUDIENCE) == "stale_session_version"
        assert await verifier_verdict(fed.identity, after["access_token"], AUDIENCE) is None
        async with fed.identity.store.unit_of_work(read_only=True) as uow:
            user_id = str(claims["sub"])
            assert await uow.roles.of_user(user_id) == frozenset()
    finally:
        upstream.set_claims("alice", original)


async def test_linking_only_by_policy(fed: Fed, upstream: Upstream) -> None:
    """A verified e-mail of a configured domain links to the local account of that name;
    an unverified one never does (a new account is provisioned instead)."""
    from tessera.application import admin

    alice = await admin.create_user(fed.identity.admin, username="alice@corp.example",
                                    password="local-password-1")
    bob = await admin.create_user(fed.identity.admin, username="bob@corp.example",
                                  password="local-password-2")
    await add_upstream(fed, upstream)
    app = await web_app(fed.identity)
    async with httpx.AsyncClient(timeout=10) as browser:
        linked = await sign_in(fed, app, browser, idp_hint="corp", prompt="login")
    async with httpx.AsyncClient(timeout=10) as browser:
        separate = await sign_in(fed, app, browser, login="bob", idp_hint="corp",
                                 prompt="login")
    assert claims_of(linked["id_token"])["sub"] == alice.user_id
    bob_sub = claims_of(separate["id_token"])["sub"]
    assert bob_sub != bob.user_id, "an unverified e-mail never links"
    async with fed.identity.store.unit_of_work(read_only=True) as uow:
        provisioned = await uow.users.get(str(bob_sub))
    assert provisioned is not None and provisioned.username == "corp:bob"


async def test_login_page_offers_providers_and_home_realm_discovery(
        fed: Fed, upstream: Upstream) -> None:
    from tests.federation.flows import authorize_url
    from tests.support import pkce_pair

    idp_id = await add_upstream(fed, upstream)
    app = await web_app(fed.identity)
    _, challenge = pkce_pair()
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(authorize_url(fed, app, challenge))
        assert page.status_code == 200
        assert "Continue with corp" in page.text
        assert f"federation/{idp_id}/start?" in page.text
        # login_hint with a home-realm domain skips the chooser
        hinted = await browser.get(authorize_url(fed, app, challenge,
                                                 login_hint="alice@corp.example"))
        assert hinted.status_code == 303
        assert f"/federation/{idp_id}/start" in hinted.headers["location"]
        # so does typing such an e-mail address as the username
        form = dict(re.findall(r"name='([^']+)' value='([^']*)'", page.text))
        typed = await browser.post(f"{fed.url}/authorize", headers={"origin": fed.url},
                                   data={**form, "username": "alice@corp.example",
                                         "password": ""})
        assert typed.status_code == 303, typed.text
        assert f"/federation/{idp_id}/start" in typed.headers["location"]
        assert "login_hint=alice%40corp.example" in typed.headers["location"]
        # the provider is of the default tenant: a client of another tenant does not see it
        from tessera.application import admin
        other, _ = await admin.create_client(
            fed.identity.admin, name="acme app", grants=("authorization_code",),
            redirect_uris=("https://app.example/cb",), scope="openid", tenant_id="acme")
        _, challenge2 = pkce_pair()
        acme = await browser.get(f"{fed.url}/authorize", params={
            "response_type": "code", "client_id": other.client_id,
            "redirect_uri": "https://app.example/cb", "scope": "openid",
            "code_challenge": challenge2, "code_challenge_method": "S256"})
        assert "Continue with" not in acme.text
        crossed = await browser.get(f"{fed.url}/federation/{idp_id}/start", params={
            "response_type": "code", "client_id": other.client_id,
            "redirect_uri": "https://app.example/cb", "scope": "openid",
            "code_challenge": challenge2, "code_challenge_method": "S256"})
        assert crossed.status_code == 404
