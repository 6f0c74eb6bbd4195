"""Risk signals: the client address (truncated) and user agent of logins and refreshes
are recorded; refresh bursts, reuse from several addresses, abrupt context changes and
failed logins across accounts are detected, each an audit event, a metric, an SSF
``risk-level-change`` and the tenant's policy (notify, step_up, revoke)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.core.clock import FixedClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.identity.login import LoginFailed
from tessera.observability import events
from tessera.store.sql import SqlStore
from tests.e2e.helpers import audit_rows, refresh
from tests.e2e.signals_world import LOOP, World, pump, signals_identity, signals_settings
from tests.signals_receivers import RelyingParty, SsfReceiver
from tests.support import TesseraDriver


async def _world(tmp_path: Path, store: SqlStore, clock: FixedClock,
                 **signals: Any) -> tuple[World, httpx.AsyncClient, Identity]:
    rps: dict[str, RelyingParty] = {}
    receivers: dict[str, SsfReceiver] = {}
    settings = signals_settings(tmp_path, signals={
        "refresh_burst_count": 4, "refresh_burst_seconds": 10, "reuse_addresses": 3,
        "failed_login_accounts": 3, **signals})
    identity = await signals_identity(settings, store, clock, rps, receivers)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(
        app=build_app(identity), client=("198.51.100.7", 5000)), base_url=LOOP)
    jwks = (await http.get("/jwks")).json()
    return World(identity, TesseraDriver(identity, http), jwks, rps, receivers), http, identity


@pytest.fixture
async def risky(tmp_path: Path, sqlite_store: SqlStore, clock: FixedClock,
                request: pytest.FixtureRequest) -> AsyncIterator[World]:
    extra: dict[str, Any] = getattr(request, "param", {})
    world, http, identity = await _world(tmp_path, sqlite_store, clock, **extra)
    yield world
    await http.aclose()
    assert identity.signals is not None
    await identity.signals.aclose()
    await identity.audit.aclose()


async def _burst(world: World) -> tuple[Any, dict[str, Any], str]:
    app, _rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    current = tokens["refresh_token"]
    for _ in range(4):
        response = await refresh(world.tessera, app, current)
        assert response.status_code == 200, response.text
        current = response.json()["refresh_token"]
        world.identity.clock.advance(1)  # type: ignore[attr-defined]
    return app, tokens, current


async def test_a_refresh_burst_is_detected_and_notified(risky: World) -> None:
    _sid, receiver, _token = await risky.push_stream("siem")
    app, _tokens, current = await _burst(risky)
    [detected] = await audit_rows(risky.identity, events.RISK_DETECTED)
    assert detected.fields["detection"] == "refresh_burst"
    assert detected.fields["action"] == "notify"
    assert detected.fields["address"] == "198.51.100.0/24"  # truncated (privacy setting)
    assert (await refresh(risky.tessera, app, current)).status_code == 200  # notify only
    await pump(risky.identity)
    [risk] = receiver.of_type("risk-level-change")
    assert risk.payload["risk_reason"] == "refresh_burst"
    assert risky.identity.metrics.registry.get_sample_value(
        "tessera_risk_signals_total", {"detection": "refresh_burst", "action": "notify"}) == 1
    async with risky.identity.store.unit_of_work(read_only=True) as uow:
        seen = await uow.signals.observations(since=0, kind="refresh")
    assert {o.address for o in seen} == {"198.51.100.0/24"}
    assert all(o.user_agent for o in seen)


@pytest.mark.parametrize("risky", [{"default_risk": {"action": "step_up"}}], indirect=True)
async def test_step_up_policy_refuses_the_next_refresh(risky: World) -> None:
    app, _tokens, current = await _burst(risky)
    refused = await refresh(risky.tessera, app, current)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    assert "sign in again" in refused.json()["error_description"]


@pytest.mark.parametrize("risky", [{"risk_policy": {"default": {"action": "revoke"}}}],
                         indirect=True)
async def test_revoke_policy_ends_the_family_through_the_outbox(risky: World) -> None:
    app, tokens, current = await _burst(risky)
    assert (await refresh(risky.tessera, app, current)).json()["error"] == "invalid_grant"
    await pump(risky.identity)
    [logout] = risky.rps["rp"].logouts  # the back-channel logout followed the revocation
    assert logout.claims["sub"] == (await audit_rows(
        risky.identity, events.RISK_DETECTED))[0].fields["user_id"]
    assert tokens


async def test_reuse_from_several_addresses_is_detected(risky: World) -> None:
    app, _rp = await risky.relying_party("rp")
    await risky.tessera.user("alice")
    tokens = await risky.tessera.login_tokens(app, username="alice")
    assert (await refresh(risky.tessera, app, tokens["refresh_token"])).status_code == 200
    risky.identity.clock.advance(120)  # past the retry grace: a second use is reuse
    for address in ("203.0.113.5", "192.0.2.9", "100.64.1.1"):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(
                app=build_app(risky.identity), client=(address, 1)), base_url=LOOP) as other:
            response = await other.post("/token", data={
                "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                auth=app.auth)  # type: ignore[arg-type]
            assert response.json()["error"] == "invalid_grant"
    detections = await audit_rows(risky.identity, events.RISK_DETECTED)
    assert [d.fields["detection"] for d in detections] == ["reuse_from_addresses"]
    assert detections[0].fields["addresses"] == 3


async def test_an_abrupt_change_of_address_and_agent_is_detected(risky: World) -> None:
    app, _rp = await risky.relying_party("rp")
    await risky.tessera.user("alice")
    tokens = await risky.tessera.login_tokens(app, username="alice")
    first = await refresh(risky.tessera, app, tokens["refresh_token"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(
            app=build_app(risky.identity), client=("203.0.113.77", 1)), base_url=LOOP) as other:
        response = await other.post("/token", data={
            "grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
            auth=app.auth, headers={"user-agent": "curl/8"})  # type: ignore[arg-type]
    assert response.status_code == 200
    [detected] = await audit_rows(risky.identity, events.RISK_DETECTED)
    assert detected.fields["detection"] == "family_context_changed"
    assert detected.fields["previous_address"] == "198.51.100.0/24"


async def test_failed_logins_across_accounts_from_one_address(risky: World) -> None:
    for name in ("ann", "ben", "cat", "dan"):
        with pytest.raises(LoginFailed):
            await risky.identity.login.authenticate("default", name, "wrong password",
                                                    client_host="203.0.113.50",
                                                    user_agent="spray/1")
    [detected] = await audit_rows(risky.identity, events.RISK_DETECTED)
    assert detected.fields["detection"] == "failed_logins_many_accounts"
    assert detected.fields["address"] == "203.0.113.0/24"
