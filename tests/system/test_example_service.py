"""The example orders service (examples/orders_service) against a live identity service:
it follows the SSE revocation feed, so a revoked session is refused within about a second,
long before the token expires; without a revocation state it never serves from an empty
one: it falls back to real introspection, or refuses."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from examples.orders_service.app import create_app
from fastapi import FastAPI

from tessera.application import admin
from tessera.core.clock import SystemClock
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings
from tests.conftest import ISSUER
from tests.support import TesseraDriver
from tests.system.conftest import LiveService
from tests.tokens import claims_of

AUDIENCE = "https://orders.example"
SCOPES = "openid orders:read orders:write orders:admin"


async def login(live: LiveService) -> tuple[str, dict[str, Any]]:
    """A fresh user logs in through the authorization-code flow (in a browser of their
    own: no shared login cookie); their access token and its (unverified) claims."""
    async with httpx.AsyncClient(base_url=live.url) as browser:
        driver = TesseraDriver(live.identity, browser)
        app = await driver.web_client(scope=SCOPES, audiences=(AUDIENCE,))
        username = f"u-{uuid.uuid4().hex[:8]}"
        await driver.user(username)
        tokens = await driver.login_tokens(app, username=username, scope=SCOPES)
    token = tokens["access_token"]
    return token, claims_of(token)


async def settings_for(live: LiveService, **overrides: Any) -> VerifierSettings:
    feed = await live.feed_client()
    assert feed.secret
    values: dict[str, Any] = {
        "issuer": ISSUER, "identity_url": live.url, "audience": AUDIENCE,
        "client_id": feed.client_id, "client_secret": feed.secret,
        "feed_heartbeat_timeout": 2.0, **overrides}
    return VerifierSettings(**values)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run (ASGITransport does not run it)."""
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://orders.test") as client:
        yield client


async def until_refused(client: httpx.AsyncClient, token: str, timeout: float = 5.0
                        ) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        response = await client.get("/orders", headers={"authorization": f"Bearer {token}"})
        if response.status_code != 200:
            return response, time.perf_counter() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"still accepted after {timeout}s")


async def test_the_example_service_refuses_a_revoked_session_within_seconds(
        live: LiveService) -> None:
    service = VerifierService(await settings_for(live), clock=SystemClock())
    async with running(create_app(service)) as client:
        assert service.follower is not None
        await asyncio.wait_for(service.follower.synced(), 5)
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        token, claims = await login(live)
        auth = {"authorization": f"Bearer {token}"}

        placed = await client.post("/orders", json={"item": "tea"}, headers=auth)
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["order_id"]
        listed = await client.get("/orders", headers=auth)
        assert listed.status_code == 200
        assert [o["order_id"] for o in listed.json()] == [order_id]
        assert (await client.get(f"/orders/{order_id}", headers=auth)).status_code == 200
        assert (await client.get("/admin/export", headers=auth)).status_code == 200

        stranger, _ = await login(live)
        theirs = await client.get(f"/orders/{order_id}",
                                  headers={"authorization": f"Bearer {stranger}"})
        assert theirs.status_code == 403

        await admin.revoke(live.identity.admin, sid=claims["sid"], reason="logout", actor="test")
        refused, after = await until_refused(client, token)
        assert refused.status_code == 401
        assert refused.json() == {"error": "invalid_token",
                                  "error_description": "The session was revoked."}
        assert after < 5.0
        assert claims["exp"] - time.time() > 60  # long before expiry
        assert (await client.get("/orders", headers={
            "authorization": f"Bearer {stranger}"})).status_code == 200

        metrics = (await client.get("/metrics")).text
        assert 'tessera_verifier_decisions_total{outcome="denied",reason="session_revoked"}' \
            in metrics
    lag = service.registry.get_sample_value("tessera_verifier_revocation_lag_seconds")
    assert lag is not None and lag < 5
    assert (service.registry.get_sample_value("tessera_verifier_revocation_cursor") or 0) >= 1


async def test_without_a_revocation_state_every_route_introspects_at_the_live_service(
        live: LiveService) -> None:
    # No feed at all: the state is never loaded, so no route may decide locally; with
    # the introspect fallback every route asks the issuer (never an empty state).
    settings = await settings_for(live, source="none", strict_fallback="introspect")
    service = VerifierService(settings, clock=SystemClock())
    async with running(create_app(service)) as client:
        token, claims = await login(live)
        auth = {"authorization": f"Bearer {token}"}
        assert (await client.get("/admin/export", headers=auth)).status_code == 200
        await admin.revoke(live.identity.admin, sid=claims["sid"], reason="logout", actor="test")
        refused = await client.get("/admin/export", headers=auth)
        assert refused.status_code == 401
        assert (await client.get("/orders", headers=auth)).status_code == 401
    registry = service.registry
    assert registry.get_sample_value("tessera_verifier_introspections_total",
                                     {"result": "active"}) == 1
    assert registry.get_sample_value("tessera_verifier_introspections_total",
                                     {"result": "inactive"}) == 2


async def test_every_route_fails_closed_when_the_feed_is_unreachable(
        live: LiveService) -> None:
    settings = await settings_for(live, identity_url="http://127.0.0.1:9",
                                  jwks_uri=f"{live.url}/jwks", strict_fallback="deny",
                                  startup_wait=0.2)
    service = VerifierService(settings, clock=SystemClock())
    async with running(create_app(service)) as client:
        token, _ = await login(live)
        auth = {"authorization": f"Bearer {token}"}
        for path in ("/admin/export", "/orders"):  # never loaded: strict or not
            refused = await client.get(path, headers=auth)
            assert refused.status_code == 503
            assert refused.json()["error"] == "temporarily_unavailable"
            assert refused.headers["retry-after"]
        not_ready = await client.get("/readyz")  # keys yes, revocation state never
        assert not_ready.status_code == 503
        assert not_ready.json() == {"status": "unavailable", "missing": ["revocation_snapshot"]}


def test_the_example_uses_only_the_public_sdk() -> None:
    import ast
    import importlib
    from pathlib import Path

    source = Path(__file__).parents[2] / "examples" / "orders_service" / "app.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tessera"):
            module = node.module or ""
            assert module.startswith("tessera.verifier"), module
            assert not any(part.startswith("_") for part in module.split(".")), module
            exported = set(importlib.import_module(module).__all__)
            assert {a.name for a in node.names} <= exported
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("tessera") for a in node.names)
