"""The edge gateway against a live identity service: it follows the real revocation feed
(SSE), verifies real tokens per route, exchanges them at the real token endpoint (RFC 8693)
and refuses a logged-out session within seconds. Once in-process (uvicorn on a socket) and
once as the ``tessera gateway`` command, the way nginx, Envoy and Traefik run it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette

from tessera.core.clients import GRANT_TOKEN_EXCHANGE
from tessera.core.clock import SystemClock
from tessera.core.secrets import token_hash
from tessera.gateway import Authorizer, create_gateway, parse_policy
from tessera.identity.feed import EVENTS_SCOPE
from tessera.verifier import KeySet, VerificationPolicy, verify_access_token
from tessera.verifier.revocation import RevocationState
from tessera.verifier.settings import VerifierSettings
from tests.conftest import ISSUER
from tests.support import AppClient, TesseraDriver
from tests.system._procs import TESSERA, base_env, claims_of, free_port, poll, spawn
from tests.system._procs import logout as procs_logout
from tests.system.conftest import LiveService

API = "https://api.example"
DOWNSTREAM = "https://orders.internal"
SCOPES = "openid orders:read orders:write"
POLICY: dict[str, Any] = {
    "acr_levels": ["urn:tessera:acr:pwd", "urn:tessera:acr:mfa"],
    "routes": [
        {"match": {"path": "/healthz"}, "public": True},
        {"match": {"host": "api.example", "path": "/orders/**"}, "audience": API,
         "scopes": ["orders:read"]},
        {"match": {"host": "api.example", "path": "/internal/**"}, "audience": API,
         "scopes": ["orders:read"], "exchange_to": DOWNSTREAM,
         "exchange_scope": "orders:read"},
        {"match": {"host": "api.example", "path": "/admin/**"}, "audience": API,
         "acr": "urn:tessera:acr:mfa", "max_age": 300},
    ]}


async def gateway_client(live: LiveService) -> AppClient:
    """The gateway's client: reads the revocation feed and exchanges tokens for the
    downstream audience (and may pass on the scopes it forwards)."""
    return await live.driver.client(grants=(GRANT_TOKEN_EXCHANGE,),
                                    scope=f"{EVENTS_SCOPE} orders:read orders:write",
                                    audiences=(DOWNSTREAM,), subject_audiences=(API,))


async def login(live: LiveService) -> dict[str, Any]:
    """A fresh user logs in (authorization code + PKCE) in a browser of their own."""
    async with httpx.AsyncClient(base_url=live.url) as browser:
        driver = TesseraDriver(live.identity, browser)
        app = await driver.web_client(scope=SCOPES, audiences=(API,))
        username = f"u-{uuid.uuid4().hex[:8]}"
        await driver.user(username)
        return await driver.login_tokens(app, username=username, scope=SCOPES)


async def logout(live: LiveService, id_token: str) -> None:
    """RP-initiated logout (OIDC) with the ``id_token_hint``, confirmed by the user."""
    await procs_logout(live.url, id_token)


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error",
                                           lifespan="on"))
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "the gateway did not start"
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def nginx(token: str, uri: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "x-original-uri": uri,
            "x-original-method": "GET", "host": "api.example",
            **{k.replace("_", "-"): v for k, v in extra.items()}}


async def until_refused(http: httpx.AsyncClient, path: str, headers: dict[str, str],
                        timeout: float = 5.0) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        response = await http.get(path, headers=headers)
        if response.status_code != 200:
            return response, time.perf_counter() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"still allowed {timeout}s after logout")


async def verify_exchanged(live: LiveService, token: str) -> dict[str, Any]:
    jwks = (await live.http.get("/jwks")).json()
    verified = verify_access_token(token, keys=KeySet.from_jwks(jwks),
                                   policy=VerificationPolicy(ISSUER, DOWNSTREAM),
                                   revocation_state=RevocationState(), now=time.time())
    return dict(verified.claims)


async def test_the_gateway_allows_exchanges_and_refuses_after_logout(
        live: LiveService) -> None:
    client = await gateway_client(live)
    assert client.secret
    settings = VerifierSettings(issuer=ISSUER, identity_url=live.url, audience="tessera-gateway",
                                client_id=client.client_id, client_secret=client.secret,
                                feed_heartbeat_timeout=2.0)
    app = create_gateway(parse_policy(POLICY), settings, clock=SystemClock())
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        authorizer: Authorizer = app.state.tessera_gateway
        assert authorizer.service.follower is not None
        await asyncio.wait_for(authorizer.service.follower.synced(), 5)
        tokens = await login(live)
        token, claims = tokens["access_token"], claims_of(tokens["access_token"])

        allowed = await http.get("/forward-auth", headers=nginx(token, "/orders/1?x=1",
                                                                 x_request_id="sys-1"))
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["x-tessera-subject"] == claims["sub"]
        assert allowed.headers["x-tessera-tenant"] == claims["tid"]
        assert allowed.headers["x-tessera-client"] == claims["client_id"]
        assert allowed.headers["x-tessera-sid-hash"] == token_hash(claims["sid"])
        assert set(allowed.headers["x-tessera-scopes"].split()) == set(SCOPES.split())
        assert allowed.headers["x-request-id"] == "sys-1"
        assert "x-tessera-token" not in allowed.headers

        # Traefik asks for the exchange route; the token is for the downstream audience.
        exchanged = await http.get("/forward-auth", headers={
            "authorization": f"Bearer {token}", "x-forwarded-uri": "/internal/report",
            "x-forwarded-method": "GET", "x-forwarded-host": "api.example"})
        assert exchanged.status_code == 200, exchanged.text
        downstream = exchanged.headers["x-tessera-token"]
        down = await verify_exchanged(live, downstream)
        assert down["aud"] in (DOWNSTREAM, [DOWNSTREAM])
        assert (down["sub"], down["sid"]) == (claims["sub"], claims["sid"])
        assert down["scope"] == "orders:read"
        assert down["act"] == {"sub": client.client_id}
        # Envoy asks again: served from the cache.
        again = await http.get("/ext-authz/internal/other",
                               headers={"authorization": f"Bearer {token}",
                                        "host": "api.example"})
        assert again.status_code == 200 and again.headers["x-tessera-token"] == downstream

        # Password login is not enough for the MFA route: RFC 9470 step-up challenge.
        step_up = await http.get("/forward-auth", headers=nginx(token, "/admin/x"))
        assert step_up.status_code == 401
        assert 'error="insufficient_user_authentication"' in step_up.headers["www-authenticate"]
        assert 'acr_values="urn:tessera:acr:mfa"' in step_up.headers["www-authenticate"]

        await logout(live, tokens["id_token"])
        refused, after = await until_refused(http, "/forward-auth", nginx(token, "/orders/1"))
        assert refused.status_code == 401
        assert refused.json() == {"error": "invalid_token",
                                  "error_description": "The session was revoked."}
        assert refused.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert after < 5.0
        assert claims["exp"] - time.time() > 60  # long before the token would expire
        # The cached exchanged token is not handed out for the dead session either.
        gone = await http.get("/ext-authz/internal/other",
                              headers={"authorization": f"Bearer {token}",
                                       "host": "api.example"})
        assert gone.status_code == 401 and "x-tessera-token" not in gone.headers

        metrics = (await http.get("/metrics")).text
        assert 'tessera_gateway_decisions_total{rule="routes[1]",status="401"}' in metrics
        assert "tessera_verifier_revocation_lag_seconds" in metrics


@pytest.mark.slow
async def test_the_tessera_gateway_command(live: LiveService, tmp_path: Path) -> None:
    client = await gateway_client(live)
    assert client.secret
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(orjson.dumps(POLICY))  # JSON is YAML
    port = free_port()
    env = {**base_env(), "TESSERA_VERIFIER_ISSUER": ISSUER,
           "TESSERA_VERIFIER_IDENTITY_URL": live.url,
           "TESSERA_VERIFIER_CLIENT_ID": client.client_id,
           "TESSERA_VERIFIER_CLIENT_SECRET": client.secret,
           "TESSERA_VERIFIER_FEED_HEARTBEAT_TIMEOUT": "2"}
    proc = await spawn("gateway", [TESSERA, "gateway", "--policy", str(policy), "--host",
                                   "127.0.0.1", "--port", str(port)],
                       env=env, cwd=tmp_path, log=tmp_path / "gateway.log")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async def healthy() -> bool:
                if not proc.running:
                    raise AssertionError(proc.log_tail())
                with contextlib.suppress(httpx.TransportError):
                    return (await http.get("/healthz")).status_code == 200
                return False

            await poll(healthy, timeout=20, what="gateway /healthz")
            tokens = await login(live)
            token = tokens["access_token"]
            ok = await http.get("/forward-auth", headers=nginx(token, "/orders/1"))
            assert ok.status_code == 200, ok.text
            internal = await http.get("/forward-auth", headers=nginx(token, "/internal/x"))
            assert internal.status_code == 200, internal.text
            assert claims_of(internal.headers["x-tessera-token"])["aud"] in (
                DOWNSTREAM, [DOWNSTREAM])
            huge = await http.get("/forward-auth",
                                  headers=nginx("a" * 100_000, "/orders/1"))
            assert huge.status_code == 431  # the server's header bound (64 KiB)
            long = await http.get("/forward-auth", headers=nginx("a" * 20_000, "/orders/1"))
            assert long.status_code == 401
            public = await http.get("/forward-auth", headers={"x-original-uri": "/healthz",
                                                              "host": "api.example"})
            assert public.status_code == 200 and public.headers["x-tessera-subject"] == ""
            head = await http.head("/forward-auth", headers=nginx(token, "/nowhere"))
            assert head.status_code == 403 and head.content == b""
            garbage = await http.get("/ext-authz/%2e%2e/%2e%2e/etc?x", headers={
                "authorization": f"Bearer {token}", "host": "api.example"})
            assert garbage.status_code == 400
            assert garbage.json()["error"] == "invalid_request"
            await logout(live, tokens["id_token"])
            refused, _ = await until_refused(http, "/forward-auth", nginx(token, "/orders/1"))
            assert refused.status_code == 401
        log = (tmp_path / "gateway.log").read_text()
        assert '"event":"access.allowed"' in log and '"event":"access.denied"' in log
        assert token not in log
    finally:
        await proc.stop()
