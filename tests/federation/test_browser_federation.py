"""Issue 11's "done when", in a real browser (headless Chromium): a user signs in at Tessera
through the upstream node-oidc-provider, the client gets tokens with the normalised
claims, a route needing MFA sends the browser back to the upstream (``acr_values``) and
passes with the upstream's one-time code, then the user signs out at the upstream: its
back-channel logout reaches Tessera and a verifier rejects the token within the
propagation bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tessera.application import admin
from tessera.core.acr import ACR_MFA, ACR_PASSWORD
from tessera.core.clock import SystemClock
from tessera.verifier import Denied, StepUpRequired, VerificationPolicy
from tessera.verifier.driver import Verifier
from tessera.verifier.jwks import JwksCache
from tessera.verifier.revocation import RevocationFollower, RevocationState
from tessera.verifier.revocation.sources import BusSource
from tests.federation.conftest import Fed, Upstream
from tests.federation.flows import AUDIENCE, add_upstream
from tests.federation.test_upstream_failures import broken_upstream
from tests.support import pkce_pair
from tests.system._procs import poll
from tests.system.test_console_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.tokens import claims_of

pytestmark = pytest.mark.slow
PROPAGATION_BOUND = 3.0


@pytest.fixture
async def landing() -> AsyncIterator[str]:
    """The client application's redirect URI: a real page on loopback."""
    async def page(_: Request) -> Response:
        return HTMLResponse("<!doctype html><title>App</title><h1>back at the app</h1>")

    async with broken_upstream(page) as url:
        yield f"{url}/cb"


def _through_upstream(driver: Any, url: str, landing: str, *, click_provider: bool,
                      otp: str | None) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    driver.get(url)
    if click_provider:
        assert "Sign in" in driver.title, driver.page_source[:500]
        driver.find_element(By.CSS_SELECTOR, "a.idp").click()
    WebDriverWait(driver, 10).until(expected_conditions.presence_of_element_located(
        (By.ID, "login")))
    driver.find_element(By.ID, "login").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys("alice-upstream-pw")
    if otp is not None:
        driver.find_element(By.ID, "otp").send_keys(otp)
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, 15).until(lambda d: str(d.current_url).startswith(landing))
    return str(driver.current_url)


def _sign_out_upstream(driver: Any, issuer: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    driver.get(f"{issuer}/session/end")
    driver.find_element(By.CSS_SELECTOR, "button[name=logout][value=yes]").click()
    WebDriverWait(driver, 10).until(lambda d: "/session/end/success" in str(d.current_url))


async def test_browser_sign_in_step_up_and_upstream_logout(
        fed: Fed, upstream: Upstream, landing: str, browser: Any,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    await add_upstream(fed, upstream)
    # the propagation bound runs from the moment Tessera has taken the upstream's logout
    # token, not from the browser's click: a loaded machine's browser is no part of it
    delivered: list[float] = []
    take_logout = fed.identity.federation.logout

    async def timed_logout(*args: Any) -> int:
        revoked = await take_logout(*args)
        delivered.append(time.monotonic())
        return revoked

    monkeypatch.setattr(fed.identity.federation, "logout", timed_logout)
    client, secret = await admin.create_client(
        fed.identity.admin, name="browser app", grants=("authorization_code",),
        redirect_uris=(landing,), scope="openid email profile api:read",
        audiences=(AUDIENCE,))
    state = RevocationState()
    follower = RevocationFollower(state, BusSource(fed.identity.bus, heartbeat=0.05),
                                  clock=SystemClock())
    verifier = Verifier(VerificationPolicy(issuer=fed.url, audience=AUDIENCE),
                        jwks=JwksCache(fed.url, clock=SystemClock()), clock=SystemClock(),
                        state=state)

    async def tokens_for(arrived: str, code_verifier: str) -> dict[str, Any]:
        code = parse_qs(urlsplit(arrived).query)["code"][0]
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(f"{fed.url}/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": landing,
                "code_verifier": code_verifier}, auth=(client.client_id, secret or ""))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def authorize(challenge: str, **extra: str) -> str:
        return f"{fed.url}/authorize?" + urlencode({
            "response_type": "code", "client_id": client.client_id, "redirect_uri": landing,
            "scope": "openid email profile api:read", "state": "st",
            "code_challenge": challenge, "code_challenge_method": "S256", **extra})

    browser.delete_all_cookies()
    follower.start()
    try:
        await asyncio.wait_for(follower.synced(), 5)
        # sign in: the login page's "Continue with corp", the upstream's form
        verifier_1, challenge_1 = pkce_pair()
        arrived = await asyncio.to_thread(_through_upstream, browser, authorize(challenge_1),
                                          landing, click_provider=True, otp=None)
        first = await tokens_for(arrived, verifier_1)
        claims = claims_of(first["id_token"])
        assert (claims["email"], claims["roles"], claims["department"]) == \
            ("alice@corp.example", ["support"], "R&D")
        assert claims["acr"] == ACR_PASSWORD
        assert (await verifier.verify(first["access_token"])).sid == claims["sid"]
        mfa_route = VerificationPolicy(issuer=fed.url, audience=AUDIENCE, min_acr=ACR_MFA)
        with pytest.raises(StepUpRequired):
            await verifier.verify(first["access_token"], policy=mfa_route)

        # step-up: the route needs MFA, the browser goes back to the upstream
        verifier_2, challenge_2 = pkce_pair()
        arrived = await asyncio.to_thread(
            _through_upstream, browser, authorize(challenge_2, acr_values=ACR_MFA), landing,
            click_provider=False, otp="246810")
        stepped = await tokens_for(arrived, verifier_2)
        stepped_claims = claims_of(stepped["id_token"])
        assert stepped_claims["acr"] == ACR_MFA and stepped_claims["sid"] == claims["sid"]
        passed = await verifier.verify(stepped["access_token"], policy=mfa_route)
        assert passed.sid == claims["sid"], "the step-up route accepts the upstream's MFA"

        # the user signs out at the upstream: back-channel logout → every verifier rejects
        await asyncio.to_thread(_sign_out_upstream, browser, upstream.issuer)
        await poll(lambda: bool(delivered), timeout=10, interval=0.01,
                   what="the upstream's back-channel logout reaches Tessera")
        rejected_at: list[float] = []

        async def rejected() -> bool:
            try:
                await verifier.verify(stepped["access_token"])
            except Denied:
                rejected_at.append(time.monotonic())
                return True
            return False

        await poll(rejected, timeout=PROPAGATION_BOUND, interval=0.01,
                   what="the verifier rejects after the upstream's back-channel logout")
        assert rejected_at[0] - delivered[0] < PROPAGATION_BOUND
    finally:
        await follower.aclose()
        await verifier.aclose()
