"""nginx in front of Tessera for system tests: find (or install) nginx, render
``deploy/nginx`` into a private prefix, run it; the services behind it (the example orders
service, a billing service that echoes what it received) and ``tessera gateway``.

Every process runs in its own session and is stopped by its own process-group id (see
``_procs``). nginx runs with ``-p PREFIX``: configuration, logs, temp files and the pid
file all live in the test's ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.application import admin
from tessera.core.clients import GRANT_TOKEN_EXCHANGE
from tessera.core.clock import SystemClock
from tessera.identity.compose import build_identity
from tessera.identity.feed import EVENTS_SCOPE
from tests.conftest import FAST_PASSWORDS, IN_CI, make_settings
from tests.raw_http import Answer, exchange
from tests.support import REDIRECT
from tests.system._procs import PASSWORD, ROOT, TESSERA, VENV_BIN, Proc, base_env, spawn
from tests.system._procs import login as procs_login

__all__ = ["BILLING_AUDIENCE", "EDGE_AUDIENCE", "NGINX_DIR", "POLICY", "EdgeSeed", "Nginx",
           "echo_app", "ensure_nginx", "login", "raw_request", "recorder_app",
           "render", "render_nginx", "seed_edge", "start_gateway", "start_nginx",
           "start_uvicorn", "verifier_env"]

NGINX_DIR = ROOT / "deploy" / "nginx"
POLICY = NGINX_DIR / "policy.yaml"
EDGE_AUDIENCE = "https://api.example"
"""The audience of the tokens clients send to the edge (every route of policy.yaml)."""
BILLING_AUDIENCE = "https://billing.example"
"""What the gateway exchanges the edge token for on /billing/ (RFC 8693)."""
USER_SCOPES = "openid orders:read orders:write orders:admin billing:read"
_PLACEHOLDER = re.compile(r"\$\{(TESSERA_[A-Z0-9_]+)\}")


# -- nginx itself -----------------------------------------------------------------------------


def nginx_binary() -> str | None:
    """The nginx on PATH, or Debian's (``/usr/sbin`` is not on every PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found


def ensure_nginx() -> str:
    """nginx with the auth_request module: the installed one, else Debian's package
    ``nginx`` (as root, with apt-get). When it cannot be had: fail in CI, skip elsewhere."""
    binary = nginx_binary()
    problem = ""
    if binary is None:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            steps = (["apt-get", "update", "-qq"],
                     ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"])
            for step in steps:
                done = subprocess.run(step, env=env, capture_output=True, text=True,
                                      timeout=600, check=False)
                if done.returncode != 0:
                    problem = f"{' '.join(step)} failed: {done.stderr.strip()[-500:]}"
                    break
            binary = nginx_binary()
        else:
            problem = "nginx is not installed (install the Debian package nginx as root)"
    if binary is not None:
        version = subprocess.run([binary, "-V"], capture_output=True, text=True,
                                 timeout=30, check=False)
        if "--with-http_auth_request_module" in version.stderr + version.stdout:
            return binary
        problem = f"{binary} was built without the auth_request module"
    problem = problem or "nginx could not be installed"
    if IN_CI:
        pytest.fail(f"nginx is required in CI: {problem}")
    pytest.skip(problem)


def render(template: str, values: dict[str, str]) -> str:
    """Replace ``${TESSERA_*}`` placeholders (as ``envsubst`` with a variable list would);
    nginx's own ``$variables`` are left alone. An unknown placeholder is an error."""
    def one(found: re.Match[str]) -> str:
        name = found[1]
        if name not in values:
            raise KeyError(f"no value for ${{{name}}}")
        return values[name]
    return _PLACEHOLDER.sub(one, template)


def render_nginx(prefix: Path, *, listen: str, gateway: str, orders: str, billing: str
                 ) -> Path:
    """``deploy/nginx`` rendered into ``prefix/conf``; the path of the main file."""
    conf = prefix / "conf"
    for sub in ("conf", "logs", "temp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    values = {"TESSERA_NGINX_PREFIX": str(prefix), "TESSERA_NGINX_LISTEN": listen,
              "TESSERA_GATEWAY": gateway, "TESSERA_ORDERS_UPSTREAM": orders,
              "TESSERA_BILLING_UPSTREAM": billing}
    for snippet in NGINX_DIR.glob("*.conf"):
        shutil.copy(snippet, conf / snippet.name)
    (conf / "nginx.conf").write_text(render((NGINX_DIR / "nginx.conf.template").read_text(),
                                            values))
    return conf / "nginx.conf"


@dataclass
class Nginx:
    proc: Proc
    url: str
    prefix: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def error_log(self) -> str:
        return (self.prefix / "logs" / "error.log").read_text(errors="replace")

    @property
    def access_log(self) -> str:
        return (self.prefix / "logs" / "access.log").read_text(errors="replace")

    async def stop(self) -> None:
        await self.proc.stop()


async def start_nginx(binary: str, prefix: Path, port: int, *, gateway: str, orders: str,
                      billing: str, timeout: float = 10.0) -> Nginx:
    conf = render_nginx(prefix, listen=f"127.0.0.1:{port}", gateway=gateway, orders=orders,
                        billing=billing)
    args = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs/error.log")]
    check = await asyncio.to_thread(subprocess.run, [*args, "-t", "-q"], capture_output=True,
                                    text=True, timeout=30, check=False)
    assert check.returncode == 0, f"nginx -t: {check.stderr}"
    proc = await spawn("nginx", args, env=base_env(), cwd=prefix, log=prefix / "nginx.out")
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(proc, f"{url}/_edge/healthz", timeout=timeout)
    except BaseException:
        await proc.kill()
        raise
    return Nginx(proc, url, prefix)


# -- services behind nginx ----------------------------------------------------------------------


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"service": "billing", "method": request.method,
                         "path": request.url.path, "query": request.url.query,
                         "headers": [[k, v] for k, v in request.headers.items()]})


async def _health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


echo_app = Starlette(routes=[
    Route("/healthz", _health),
    Route("/billing/{rest:path}", _echo, methods=["GET", "HEAD", "POST"]),
])
"""The billing service: answers every request with the method, path and headers it got."""

_recorded: list[dict[str, Any]] = []


async def _record(request: Request) -> JSONResponse:
    _recorded.append({"path": request.url.path,
                      "headers": [[k, v] for k, v in request.headers.items()]})
    return JSONResponse({"recorded": True})


async def _recordings(_: Request) -> JSONResponse:
    return JSONResponse(_recorded)


recorder_app = Starlette(routes=[
    Route("/healthz", _health),
    Route("/_recorded", _recordings),
    Route("/{rest:path}", _record, methods=["GET", "HEAD", "POST", "PUT", "DELETE"]),
])
"""Stands in for the gateway (answers every decision with an empty 200) and for the
services: records the path and headers of every request it gets (``GET /_recorded``)."""


async def raw_request(port: int, target: str, *, method: str = "GET",
                      headers: dict[str, str] | None = None, timeout: float = 10.0) -> Answer:
    """One HTTP/1.1 request with ``target`` sent byte for byte (HTTP clients resolve dot
    segments and re-encode paths before sending; an attacker does not)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return await exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"),
                          timeout=timeout)


async def wait_healthy(proc: Proc, url: str, *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1.0) as http:
        while True:
            if not proc.running:
                raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} did not become healthy:\n{proc.log_tail()}")
            await asyncio.sleep(0.05)


async def start_uvicorn(name: str, app: str, port: int, *, tmp: Path,
                        env: dict[str, str] | None = None, factory: bool = False,
                        health: str = "/healthz") -> Proc:
    """``uvicorn APP`` from the repository root (``examples``/``tests`` importable)."""
    cmd = [str(VENV_BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]
    if factory:
        cmd.append("--factory")
    proc = await spawn(name, cmd, env=base_env() | (env or {}), cwd=ROOT,
                       log=tmp / f"{name}.log")
    try:
        await wait_healthy(proc, f"http://127.0.0.1:{port}{health}")
    except BaseException:
        await proc.kill()
        raise
    return proc


def verifier_env(issuer: str, audience: str, client_id: str, secret: str) -> dict[str, str]:
    return {"TESSERA_VERIFIER_ISSUER": issuer, "TESSERA_VERIFIER_AUDIENCE": audience,
            "TESSERA_VERIFIER_CLIENT_ID": client_id,
            "TESSERA_VERIFIER_CLIENT_SECRET": secret, "TESSERA_VERIFIER_SOURCE": "http",
            "TESSERA_VERIFIER_FEED_HEARTBEAT_TIMEOUT": "2"}


async def start_gateway(port: int, *, policy: Path, tmp: Path, env: dict[str, str]) -> Proc:
    """``tessera gateway --policy FILE`` (the decision service nginx asks)."""
    proc = await spawn("gateway", [TESSERA, "gateway", "--policy", str(policy), "--host",
                                   "127.0.0.1", "--port", str(port)],
                       env=base_env() | env, cwd=tmp, log=tmp / "gateway.log")
    try:
        await wait_healthy(proc, f"http://127.0.0.1:{port}/healthz")
    except BaseException:
        await proc.kill()
        raise
    return proc


# -- the identity service's data ------------------------------------------------------------------


@dataclass
class EdgeSeed:
    web_id: str
    web_secret: str
    gateway_id: str
    gateway_secret: str
    orders_id: str
    orders_secret: str
    usernames: list[str]


def _copy_template(template: Path, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, data_dir / "tessera.db")


async def seed_edge(data_dir: Path, template: Path, *, users: int = 2) -> EdgeSeed:
    """A web app whose users' tokens are for the edge (``EDGE_AUDIENCE``), the gateway's
    client (revocation feed, token exchange to ``BILLING_AUDIENCE``), the orders
    service's client (revocation feed) and ``users`` users."""
    await asyncio.to_thread(_copy_template, template, data_dir)
    identity = await build_identity(make_settings(data_dir), clock=SystemClock(),
                                    passwords=FAST_PASSWORDS)
    try:
        web, web_secret = await admin.create_client(
            identity.admin, name="web", grants=("authorization_code", "refresh_token"),
            redirect_uris=(REDIRECT,), scope=USER_SCOPES, audiences=(EDGE_AUDIENCE,))
        gateway, gateway_secret = await admin.create_client(
            identity.admin, name="edge-gateway",
            grants=("client_credentials", GRANT_TOKEN_EXCHANGE),
            scope=f"{EVENTS_SCOPE} billing:read", audiences=(BILLING_AUDIENCE,),
            subject_audiences=(EDGE_AUDIENCE,))
        orders, orders_secret = await admin.create_client(
            identity.admin, name="orders-service", grants=("client_credentials",),
            scope=EVENTS_SCOPE)
        names = [f"u{i}-{uuid.uuid4().hex[:6]}" for i in range(users)]
        for name in names:
            await admin.create_user(identity.admin, username=name, password=PASSWORD)
    finally:
        await identity.aclose()
    assert web_secret and gateway_secret and orders_secret
    return EdgeSeed(web.client_id, web_secret, gateway.client_id, gateway_secret,
                    orders.client_id, orders_secret, names)


async def login(url: str, seed: EdgeSeed, username: str, *, scope: str = USER_SCOPES
                ) -> dict[str, Any]:
    """The browser login of ``tests.system._procs``, with the edge's user scopes."""
    return await procs_login(url, seed, username, scope=scope)

