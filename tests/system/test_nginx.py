"""The nginx deployment (deploy/nginx) end to end: a real nginx (Debian's package,
installed when missing) with ``auth_request`` to ``tessera gateway``, in front of the
example orders service and a billing service that echoes what it received, all against
``tessera serve`` on real sockets.

Through nginx: no token → 401 with the RFC 6750 challenge; a valid token → the upstream
gets the identity headers (and the exchanged token on /billing/), the correlation id makes
the round trip; a missing scope → 403 insufficient_scope; a step-up route → 401
insufficient_user_authentication with acr_values (RFC 9470); a logout → 401 within
seconds; malformed, oversized and forged headers, unknown routes → clear 4xx, never a 5xx,
and nginx keeps serving; the gateway down → 503 (fail closed), then back.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from tests.system._nginx import (
    BILLING_AUDIENCE,
    EDGE_AUDIENCE,
    NGINX_DIR,
    POLICY,
    EdgeSeed,
    Nginx,
    ensure_nginx,
    login,
    raw_request,
    render,
    seed_edge,
    start_gateway,
    start_nginx,
    start_uvicorn,
    verifier_env,
)
from tests.system._procs import (
    TESSERA,
    Proc,
    Server,
    base_env,
    claims_of,
    free_port,
    logout,
    server_env,
    start_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@dataclass
class Edge:
    server: Server
    seed: EdgeSeed
    nginx: Nginx
    gateway: Proc
    gateway_port: int
    gateway_env: dict[str, str]
    tmp: Path
    http: httpx.AsyncClient
    """A client of nginx (and only nginx)."""

    async def login(self, index: int = 0, **kw: Any) -> dict[str, Any]:
        return await login(self.server.url, self.seed, self.seed.usernames[index], **kw)

    async def restart_gateway(self) -> None:
        self.gateway = await start_gateway(self.gateway_port, policy=POLICY, tmp=self.tmp,
                                           env=self.gateway_env)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
               ) -> AsyncIterator[Edge]:
    binary = await asyncio.to_thread(ensure_nginx)
    tmp = tmp_path_factory.mktemp("nginx-edge")
    data = tmp / "identity"
    seed = await seed_edge(data, sqlite_template, users=3)
    procs: list[Proc] = []
    nginx: Nginx | None = None
    server = await start_server(data, server_env(data, free_port()))
    try:
        gateway_port, orders_port, billing_port = free_port(), free_port(), free_port()
        gateway_env = verifier_env(server.url, EDGE_AUDIENCE, seed.gateway_id,
                                   seed.gateway_secret)
        orders_env = verifier_env(server.url, EDGE_AUDIENCE, seed.orders_id,
                                  seed.orders_secret)
        started = await asyncio.gather(
            start_gateway(gateway_port, policy=POLICY, tmp=tmp, env=gateway_env),
            start_uvicorn("orders", "examples.orders_service.app:create_app", orders_port,
                          tmp=tmp, env=orders_env, factory=True),
            start_uvicorn("billing", "tests.system._nginx:echo_app", billing_port, tmp=tmp),
            return_exceptions=True)
        procs = [p for p in started if isinstance(p, Proc)]
        for result in started:
            if isinstance(result, BaseException):
                raise result
        gateway = procs[0]
        nginx = await start_nginx(binary, tmp / "nginx", free_port(),
                                  gateway=f"127.0.0.1:{gateway_port}",
                                  orders=f"127.0.0.1:{orders_port}",
                                  billing=f"127.0.0.1:{billing_port}")
        async with httpx.AsyncClient(base_url=nginx.url, timeout=10.0) as http:
            edge = Edge(server, seed, nginx, gateway, gateway_port, gateway_env, tmp, http)
            yield edge
            procs[0] = edge.gateway
    finally:
        if nginx is not None:
            await nginx.stop()
        for proc in procs:
            await proc.stop()
        await server.stop()
    assert nginx is not None
    assert "[emerg]" not in nginx.error_log and "[alert]" not in nginx.error_log, \
        nginx.error_log


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def challenge_params(header: str) -> dict[str, str]:
    """``Bearer error="x", acr_values="y"`` → {"error": "x", "acr_values": "y"}."""
    assert header.startswith("Bearer"), header
    params: dict[str, str] = {}
    for part in header[len("Bearer"):].split(","):
        name, _, value = part.strip().partition("=")
        if name:
            params[name] = value.strip('"')
    return params


def received(response: httpx.Response) -> dict[str, list[str]]:
    """The headers the billing service received, by lower-case name."""
    headers: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


def assert_no_5xx(edge: Edge) -> None:
    """nginx answered no request with a 5xx (its access log has every answer), and the
    gateway never answered anything but 200, 400, 401 or 403."""
    for line in edge.nginx.access_log.splitlines():
        status = line.split('" ', 1)[1].split(" ", 1)[0]
        assert not status.startswith("5"), line
    unexpected = re.findall(r"auth request unexpected status: (\d+)", edge.nginx.error_log)
    assert set(unexpected) <= {"400"}, unexpected


async def run_gateway_check(policy: Path, env: dict[str, str]) -> tuple[int, str]:
    """``tessera gateway --policy FILE --port 9`` as a deployment would start it: its
    exit status and output (a bad policy exits before listening)."""
    proc = await asyncio.create_subprocess_exec(
        TESSERA, "gateway", "--policy", str(policy), "--host", "127.0.0.1", "--port", "9",
        env=base_env() | env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


# -- tests ------------------------------------------------------------------------------------


async def test_no_token_gets_the_rfc6750_challenge(edge: Edge) -> None:
    response = await edge.http.get("/orders")
    assert response.status_code == 401, response.text
    assert response.headers.get_list("www-authenticate") == ["Bearer"]
    assert "error=" not in response.headers["www-authenticate"]  # RFC 6750 §3.1
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "unauthorized"
    assert response.json()["request_id"] == response.headers["x-request-id"]

    garbage = await edge.http.get("/orders", headers=bearer("not-a-jwt"))
    assert garbage.status_code == 401
    assert challenge_params(garbage.headers["www-authenticate"])["error"] == "invalid_token"
    assert garbage.json()["error"] == "invalid_token"


async def test_valid_token_reaches_the_services_with_the_identity(edge: Edge) -> None:
    tokens = await edge.login(0)
    token = tokens["access_token"]
    claims = claims_of(token)

    placed = await edge.http.post("/orders", json={"item": "tea", "quantity": 2},
                                  headers=bearer(token))
    assert placed.status_code == 201, placed.text
    assert placed.json()["owner"] == claims["sub"]
    listed = await edge.http.get("/orders", headers=bearer(token))
    assert listed.status_code == 200, listed.text
    assert [o["order_id"] for o in listed.json()] == [placed.json()["order_id"]]

    rid = "test-rid-0001"
    billed = await edge.http.get("/billing/invoices?month=2024-05",
                                 headers=bearer(token) | {"x-request-id": rid})
    assert billed.status_code == 200, billed.text
    assert billed.headers["x-request-id"] == rid
    assert billed.headers.get_list("x-request-id") == [rid]
    body = billed.json()
    assert (body["method"], body["path"], body["query"]) == ("GET", "/billing/invoices",
                                                             "month=2024-05")
    seen = received(billed)
    assert seen["x-tessera-subject"] == [claims["sub"]]
    assert seen["x-tessera-tenant"] == [claims["tid"]]
    assert seen["x-tessera-client"] == [claims["client_id"]]
    assert seen["x-tessera-scopes"] == [" ".join(sorted(claims["scope"].split()))]
    assert len(seen["x-tessera-sid-hash"][0]) >= 32
    assert claims["sid"] not in str(seen)
    assert seen["x-request-id"] == [rid]
    assert "x-tessera-token" not in seen
    # The billing service got the exchanged token (RFC 8693), not the edge token.
    [authorization] = seen["authorization"]
    exchanged = authorization.removeprefix("Bearer ")
    assert exchanged != token
    exchanged_claims = claims_of(exchanged)
    assert exchanged_claims["aud"] in (BILLING_AUDIENCE, [BILLING_AUDIENCE])
    assert exchanged_claims["scope"] == "billing:read"
    assert exchanged_claims["sub"] == claims["sub"]
    assert exchanged_claims["sid"] == claims["sid"]
    assert exchanged_claims["act"]["sub"] == edge.seed.gateway_id

    # Without an id of its own, the request gets nginx's; the same one everywhere.
    minted = await edge.http.get("/billing/x", headers=bearer(token))
    assert minted.status_code == 200
    [minted_id] = received(minted)["x-request-id"]
    assert minted.headers["x-request-id"] == minted_id
    assert len(minted_id) == 32
    # An unusable id is replaced, not echoed.
    odd = await edge.http.get("/billing/x", headers=bearer(token) | {"x-request-id": "a b"})
    assert odd.status_code == 200
    assert odd.headers["x-request-id"] != "a b"
    assert received(odd)["x-request-id"] == [odd.headers["x-request-id"]]


async def test_a_client_cannot_claim_an_identity(edge: Edge) -> None:
    token = (await edge.login(1, scope="openid billing:read"))["access_token"]
    forged = {"x-tessera-subject": "admin", "x-tessera-tenant": "other",
              "x-tessera-scopes": "orders:admin", "x-tessera-token": "forged",
              "x-original-uri": "/public", "x-forwarded-uri": "/public",
              "x-forwarded-method": "GET"}
    response = await edge.http.get("/billing/x", headers=bearer(token) | forged)
    assert response.status_code == 200, response.text
    seen = received(response)
    assert seen["x-tessera-subject"] == [claims_of(token)["sub"]]
    assert seen["x-tessera-tenant"] == [claims_of(token)["tid"]]
    assert seen["x-tessera-scopes"] == ["billing:read openid"]
    assert "x-tessera-token" not in seen
    assert seen["authorization"] != [f"Bearer {token}"]
    # No identity without a token, whatever the client sends.
    anonymous = await edge.http.get("/billing/x", headers=forged)
    assert anonymous.status_code == 401


async def test_missing_scope_is_403_insufficient_scope(edge: Edge) -> None:
    token = (await edge.login(1, scope="openid orders:read"))["access_token"]
    assert (await edge.http.get("/orders", headers=bearer(token))).status_code == 200
    refused = await edge.http.post("/orders", json={"item": "tea"}, headers=bearer(token))
    assert refused.status_code == 403, refused.text
    params = challenge_params(refused.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "orders:write"
    assert refused.json()["error"] == "insufficient_scope"
    billing = await edge.http.get("/billing/x", headers=bearer(token))
    assert billing.status_code == 403


async def test_step_up_route_challenges_for_a_stronger_acr(edge: Edge) -> None:
    token = (await edge.login(1))["access_token"]
    assert claims_of(token)["acr"] == "urn:tessera:acr:pwd"
    refused = await edge.http.get("/admin/export", headers=bearer(token))
    assert refused.status_code == 401, refused.text
    params = challenge_params(refused.headers["www-authenticate"])
    assert params["error"] == "insufficient_user_authentication"
    assert params["acr_values"] == "urn:tessera:acr:mfa"
    assert params["max_age"] == "900"
    assert refused.json()["error"] == "insufficient_user_authentication"


async def test_logout_is_enforced_at_the_edge_within_seconds(edge: Edge) -> None:
    tokens = await edge.login(2)
    token = tokens["access_token"]
    assert (await edge.http.get("/orders", headers=bearer(token))).status_code == 200
    assert (await edge.http.get("/billing/x", headers=bearer(token))).status_code == 200

    await logout(edge.server.url, tokens["id_token"])
    started = time.monotonic()
    while True:
        response = await edge.http.get("/orders", headers=bearer(token))
        if response.status_code != 200:
            break
        assert time.monotonic() - started < 5, "still served 5 s after the logout"
        await asyncio.sleep(0.05)
    assert response.status_code == 401, response.text
    assert challenge_params(response.headers["www-authenticate"])["error"] == "invalid_token"
    # Not even a cached exchanged token for billing.
    assert (await edge.http.get("/billing/x", headers=bearer(token))).status_code == 401
    assert claims_of(token)["exp"] - time.time() > 60  # long before expiry


@pytest.mark.parametrize("authorization", [
    "Bearer",
    "Basic dXNlcjpwYXNz",
    "Bearer a b c",
    "Bearer \"quoted\"",
    "Bearer " + "x" * 12_000,   # reaches the gateway (nginx takes up to 16 KiB a line)
    "bearer eyJhbGciOiJub25lIn0.e30.",
])
async def test_malformed_authorization_is_refused_cleanly(edge: Edge, authorization: str
                                                          ) -> None:
    response = await edge.http.get("/orders", headers={"authorization": authorization})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] in ("invalid_token", "invalid_request", "unauthorized")


async def test_oversized_and_malformed_requests_do_not_break_nginx(edge: Edge) -> None:
    token = (await edge.login(0))["access_token"]
    # A 100 KB token: nginx refuses the header line itself (over 16 KiB), as JSON.
    huge = await edge.http.get("/orders", headers=bearer("x" * 100_000))
    assert huge.status_code == 400, huge.text
    assert huge.json()["error"] == "invalid_request"
    assert huge.json()["request_id"] == huge.headers["x-request-id"]
    # Paths the gateway refuses to describe, unknown routes, methods no route allows.
    for path in ("/orders/%2e%2e/admin/export", "/orders/%2F..%2Fadmin", "/orders/%ff"):
        response = await edge.http.get(path, headers=bearer(token))
        assert response.status_code == 400, (path, response.status_code)
        assert response.json()["error"] == "invalid_request"
    for path in ("/unknown", "/"):
        response = await edge.http.get(path, headers=bearer(token))
        assert response.status_code == 403, (path, response.status_code)
    deleted = await edge.http.delete("/orders/o-1", headers=bearer(token))
    assert deleted.status_code == 403
    assert challenge_params(deleted.headers["www-authenticate"])["error"] == "access_denied"
    # Two Authorization headers.
    doubled = await edge.http.get("/orders", headers=[("authorization", f"Bearer {token}"),
                                                       ("authorization", "Bearer other")])
    assert doubled.status_code in (400, 401), doubled.status_code
    assert doubled.json()["error"] in ("invalid_request", "invalid_token")
    # nginx keeps serving.
    assert (await edge.http.get("/orders", headers=bearer(token))).status_code == 200
    assert edge.nginx.proc.running
    assert_no_5xx(edge)


async def test_gateway_down_fails_closed_with_503_then_recovers(edge: Edge) -> None:
    token = (await edge.login(0))["access_token"]
    await edge.gateway.stop()
    down = await edge.http.get("/orders", headers=bearer(token))
    assert down.status_code == 503, down.text
    assert down.json()["error"] == "temporarily_unavailable"
    assert down.headers["retry-after"] == "1"
    assert (await edge.http.get("/_edge/healthz")).status_code == 200

    # A broken policy file: the gateway refuses to start and says where; nginx goes on
    # failing closed.
    broken = edge.tmp / "broken.yaml"
    broken.write_text(POLICY.read_text().replace("acr: urn:tessera:acr:mfa",
                                                 "acr: urn:tessera:acr:hardware-key"))
    code, message = await run_gateway_check(broken, edge.gateway_env)
    assert code == 2, message
    assert "routes[0].acr" in message and "acr_levels" in message, message
    assert (await edge.http.get("/orders", headers=bearer(token))).status_code == 503

    await edge.restart_gateway()
    back = await edge.http.get("/orders", headers=bearer(token))
    assert back.status_code == 200, back.text


async def test_the_template_and_the_shipped_policy_are_consistent() -> None:
    """Every placeholder of the template is documented (envsubst list) and rendered; the
    shipped policy passes ``tessera gateway --check``."""
    template = (NGINX_DIR / "nginx.conf.template").read_text()
    used = set(re.findall(r"\$\{(TESSERA_[A-Z0-9_]+)\}", template))
    envsubst = template.split("envsubst '", 1)[1].split("'", 1)[0]
    assert set(re.findall(r"TESSERA_[A-Z0-9_]+", envsubst)) == used
    rendered = render(template, dict.fromkeys(used, "X"))
    assert "${" not in rendered
    env = verifier_env("http://127.0.0.1:9", EDGE_AUDIENCE, "c_gateway", "secret")
    proc = await asyncio.create_subprocess_exec(
        TESSERA, "gateway", "--check", "--policy", str(POLICY), env=base_env() | env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    assert "4 route(s)" in out.decode()


SMUGGLED_PATHS = [
    "/billing/..;/orders", "/billing/x/..;/..;/admin/export", "/billing;x=1/x",
    "/billing/x;jsessionid=1", "/billing/%2e%2e/orders", "/billing/.%2E/admin/export",
    "/billing/%2e/x", "/billing/../orders", "/billing/./x", "//billing/x", "/billing//x",
    "/billing/%252e%252e/orders", "/billing/%2f..%2forders", "/billing/%5c..%5corders",
    "/billing/%3b/x", "/billing/x%20", "/billing/%EF%BC%8E%EF%BC%8E/orders",
    "/orders/..;/admin/export", "/orders/%2e%2e/admin/export",
]
"""Paths Tomcat, Spring or Starlette behind nginx could serve as another resource than the
one nginx and the gateway matched; sent byte for byte."""


@pytest.mark.parametrize("path", SMUGGLED_PATHS)
async def test_paths_a_back_end_could_resolve_otherwise_are_400_at_the_edge(
        edge: Edge, path: str) -> None:
    token = (await edge.login(0))["access_token"]
    response = await raw_request(edge.nginx.port, path,
                                 headers={"authorization": f"Bearer {token}"})
    assert response.status == 400, (path, response.status, response.raw)
    body = orjson.loads(response.body)
    assert body["error"] == "invalid_request", body
    assert "service" not in body  # nginx answered: no upstream saw the request


FORGED_ROUTING = {
    "x-original-url": "/admin/export", "x-rewrite-url": "/admin/export",
    "x-original-uri": "/admin/export", "x-http-method-override": "DELETE",
    "x-http-method": "DELETE", "x-method-override": "DELETE",
    "x-forwarded-host": "evil.example", "x-forwarded-prefix": "/admin",
    "x-forwarded-port": "8443", "x-forwarded-uri": "/admin/export",
    "x-forwarded-method": "DELETE", "forwarded": "host=evil.example;proto=https",
}
"""Headers frameworks read as the real URL, method, host or prefix, as a client forges
them."""


async def test_forged_routing_headers_reach_neither_the_gateway_nor_the_upstream(
        tmp_path: Path) -> None:
    """A recorder stands in for the gateway and both services: it allows every request and
    records what nginx sent it, in the decision subrequest and in the proxied request."""
    binary = await asyncio.to_thread(ensure_nginx)
    recorder_port = free_port()
    recorder = await start_uvicorn("recorder", "tests.system._nginx:recorder_app",
                                   recorder_port, tmp=tmp_path)
    target = f"127.0.0.1:{recorder_port}"
    nginx = None
    try:
        nginx = await start_nginx(binary, tmp_path / "nginx", free_port(), gateway=target,
                                  orders=target, billing=target)
        async with httpx.AsyncClient(base_url=nginx.url, timeout=10.0) as http:
            for path in ("/billing/x?y=1", "/orders/7"):
                response = await http.get(path, headers=FORGED_ROUTING)
                assert response.status_code == 200, response.text
            recorded = (await http.get(f"http://{target}/_recorded")).json()
    finally:
        if nginx is not None:
            await nginx.stop()
        await recorder.stop()
    decisions = [r for r in recorded if r["path"] == "/forward-auth"]
    proxied = [r for r in recorded if r["path"] != "/forward-auth"]
    assert [r["path"] for r in proxied] == ["/billing/x", "/orders/7"]
    assert len(decisions) == 2
    for request in recorded:
        seen = {name: value for name, value in request["headers"]}
        for name, forged in FORGED_ROUTING.items():
            assert seen.get(name) != forged, (request["path"], name)
    for request, uri in zip(decisions, ("/billing/x?y=1", "/orders/7"), strict=True):
        seen = dict(request["headers"])
        assert seen["x-original-uri"] == uri  # nginx's $request_uri, not the client's
        assert seen["x-original-method"] == "GET"
        assert seen["x-forwarded-host"] == "127.0.0.1"
    for request in proxied:
        seen = dict(request["headers"])
        assert set(FORGED_ROUTING) & set(seen) == set(), request
