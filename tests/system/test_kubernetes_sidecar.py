"""The orders pod of deploy/kubernetes/orders.yaml, run here on loopback: its nginx
(the ConfigMap's nginx.conf and snippets), the gateway sidecar with the ConfigMap's
policy, and the example service, against a live ``tessera serve``. Only ports and paths
are rewritten (a pod owns 8080/8090/8001 and /tmp; a test shares the machine).

Through the pod's proxy: no token → 401 with the challenge; a token for the service →
the request reaches the application, which verifies it again; a missing scope → 403; a
path no rule allows → 403; after logout → 401 within seconds; the sidecar down → 503."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.system._nginx import (
    EDGE_AUDIENCE,
    ensure_nginx,
    login,
    seed_edge,
    start_gateway,
    start_uvicorn,
    verifier_env,
    wait_healthy,
)
from tests.system._procs import (
    base_env,
    free_port,
    logout,
    server_env,
    spawn,
    start_server,
)

pytestmark = [pytest.mark.slow]

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "orders.yaml"


def configmaps() -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: doc["data"]
            for doc in yaml.safe_load_all(MANIFEST.read_text())
            if doc and doc["kind"] == "ConfigMap"}


def pod_config(prefix: Path, *, listen: int, gateway: int, app: int) -> Path:
    data = configmaps()["orders-proxy-nginx"]
    conf = data["nginx.conf"]
    for old, new in (("listen 8080;", f"listen 127.0.0.1:{listen};"),
                     ("server 127.0.0.1:8090;", f"server 127.0.0.1:{gateway};"),
                     ("server 127.0.0.1:8001;", f"server 127.0.0.1:{app};"),
                     (" /tmp/", f" {prefix}/tmp/"),
                     ("error_log /dev/stderr", f"error_log {prefix}/error.log"),
                     ("access_log /dev/stdout", f"access_log {prefix}/access.log")):
        assert old in conf, old
        conf = conf.replace(old, new)
    (prefix / "tmp").mkdir(parents=True)
    for name, text in data.items():
        (prefix / name).write_text(conf if name == "nginx.conf" else text)
    return prefix / "nginx.conf"


async def test_the_pod_proxy_decides_with_its_sidecar(tmp_path: Path,
                                                      sqlite_template: Path) -> None:
    binary = await asyncio.to_thread(ensure_nginx)
    data = tmp_path / "identity"
    seed = await seed_edge(data, sqlite_template, users=2)
    policy = tmp_path / "policy.yaml"
    policy.write_text(configmaps()["orders-gateway-policy"]["policy.yaml"]
                      .replace("https://orders.example", EDGE_AUDIENCE))
    server = await start_server(data, server_env(data, free_port()))
    procs = []
    try:
        gateway_port, app_port, proxy_port = free_port(), free_port(), free_port()
        gateway_env = verifier_env(server.url, "tessera-gateway", seed.gateway_id,
                                   seed.gateway_secret)
        gateway = await start_gateway(gateway_port, policy=policy, tmp=tmp_path,
                                      env=gateway_env)
        procs.append(gateway)
        await wait_healthy(gateway, f"http://127.0.0.1:{gateway_port}/readyz")
        app = await start_uvicorn("orders", "examples.orders_service.app:create_app",
                                  app_port, tmp=tmp_path, factory=True, health="/readyz",
                                  env=verifier_env(server.url, EDGE_AUDIENCE, seed.orders_id,
                                                   seed.orders_secret))
        procs.append(app)
        conf = pod_config(tmp_path / "pod", listen=proxy_port, gateway=gateway_port,
                          app=app_port)
        proxy = await spawn("nginx", [binary, "-p", str(conf.parent), "-c", str(conf), "-e",
                                      str(conf.parent / "error.log"), "-g", "daemon off;"],
                            env=base_env(), cwd=conf.parent, log=tmp_path / "nginx.out")
        procs.append(proxy)
        url = f"http://127.0.0.1:{proxy_port}"
        await wait_healthy(proxy, f"{url}/_edge/healthz")
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
            await _through_the_pod(http, server.url, seed, gateway)
    finally:
        for proc in reversed(procs):
            await proc.stop()
        await server.stop()


async def _through_the_pod(http: httpx.AsyncClient, issuer: str, seed: Any,
                           gateway: Any) -> None:
    anonymous = await http.get("/orders")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    tokens = await login(issuer, seed, seed.usernames[0])
    auth = {"authorization": f"Bearer {tokens['access_token']}"}
    placed = await http.post("/orders", json={"item": "tea"}, headers=auth)
    assert placed.status_code == 201, placed.text  # the app verified the token too
    listed = await http.get("/orders", headers=auth)
    assert listed.status_code == 200 and len(listed.json()) == 1

    narrow = await login(issuer, seed, seed.usernames[1], scope="openid orders:read")
    refused = await http.post("/orders", json={"item": "x"},
                              headers={"authorization": f"Bearer {narrow['access_token']}"})
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert (await http.get("/nowhere", headers=auth)).status_code == 403  # default deny

    await logout(issuer, tokens["id_token"])
    deadline = time.monotonic() + 5.0
    while (await http.get("/orders", headers=auth)).status_code == 200:
        assert time.monotonic() < deadline, "still accepted 5 s after logout"
        await asyncio.sleep(0.05)
    assert (await http.get("/orders", headers=auth)).status_code == 401

    await gateway.stop()  # the sidecar is gone: the pod fails closed
    down = await http.get("/orders", headers=auth)
    assert down.status_code == 503
    assert down.json()["error"] == "temporarily_unavailable"
