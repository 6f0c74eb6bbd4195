"""Two identity instances and two gateways behind a real nginx load balancer, on one
PostgreSQL (a schema of this test, through a role whose ``search_path`` is that schema)
and one Redis (issue 16 item 1). Nothing is shared but the database and Redis: each
instance has a data directory of its own.

nginx round-robins ``/`` over the two ``tessera serve`` instances (the issuer is nginx's
address) and the forward-auth decisions over the two ``tessera gateway`` processes; one
gateway follows the Redis stream, the other the HTTP feed through nginx. Shown, against
the real processes:

- a browser login whose requests land on both instances works;
- a refresh race split across the instances rotates the token once (one winner, the same
  successor for every concurrent retry);
- a DPoP proof accepted by one instance is refused (replay) by the other;
- a key rotation made on one instance's host reaches the other instance and both gateways;
- a session revoked through either instance is refused by both gateways;
- client-authentication failures count across the instances.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from tests.conftest import KEK, POSTGRES_URL, REDIS_URL, require_service
from tests.dpop_client import DPoPKey
from tests.system._nginx import ensure_nginx, wait_healthy
from tests.system._procs import (
    TESSERA,
    Proc,
    Seed,
    base_env,
    claims_of,
    free_port,
    kid_of,
    login,
    poll,
    seed,
    spawn,
)
from tests.system._procs import admin_revoke as procs_admin_revoke

pytestmark = pytest.mark.postgres

AUDIENCE = "https://api.example"
CLIENT_AUTH_LIMIT = 4
POLICY = """\
default: deny
routes:
  - match: {path: "/api/**", methods: [GET]}
    audience: https://api.example
    scopes: [api:read]
"""
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log {prefix}/logs/access.log;
  client_body_temp_path {prefix}/temp/body;
  proxy_temp_path {prefix}/temp/proxy;
  fastcgi_temp_path {prefix}/temp/fastcgi;
  uwsgi_temp_path {prefix}/temp/uwsgi;
  scgi_temp_path {prefix}/temp/scgi;
  upstream identity {{ server 127.0.0.1:{i1}; server 127.0.0.1:{i2}; keepalive 8; }}
  upstream gateways {{ server 127.0.0.1:{g1}; server 127.0.0.1:{g2}; keepalive 8; }}
  server {{
    listen 127.0.0.1:{identity_port};
    location / {{
      proxy_pass http://identity;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;          # the revocation feed (SSE) streams
      proxy_read_timeout 1h;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
  server {{
    listen 127.0.0.1:{gateway_port};
    location / {{
      proxy_pass http://gateways;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
"""


@dataclass
class Deployment:
    issuer: str
    """nginx in front of the identity instances (the issuer)."""
    instances: list[str]
    """Each identity instance directly."""
    gateways: list[str]
    """Each gateway directly."""
    gateway_lb: str
    """nginx in front of the gateways."""
    seed: Seed
    env: dict[str, str]
    data_dirs: list[Path]


@pytest.fixture
async def pg_role() -> AsyncIterator[str]:
    """A database URL whose role sees only a fresh schema of this test."""
    url = require_service(POSTGRES_URL, "postgres")
    name = f"tessera_2i_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE ROLE "{name}" LOGIN')
        await conn.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
        await conn.execute(f'ALTER ROLE "{name}" SET search_path = "{name}"')
    finally:
        await conn.close()
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    yield urlunsplit(parts._replace(netloc=f"{name}@{host}"))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        await conn.execute(f'DROP ROLE "{name}"')
    finally:
        await conn.close()


@pytest.fixture
async def deployment(tmp_path: Path, pg_role: str) -> AsyncIterator[Deployment]:
    redis_url = require_service(REDIS_URL, "redis")
    nginx = ensure_nginx()
    seeded = await seed(tmp_path / "seed", None, users=3, database_url=pg_role)
    i1, i2, g1, g2 = free_port(), free_port(), free_port(), free_port()
    identity_port, gateway_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{identity_port}"
    stream = f"tessera:test:{uuid.uuid4().hex}"
    env = base_env() | {
        "TESSERA_ISSUER": issuer, "TESSERA_DATABASE_URL": pg_role,
        "TESSERA_KEYS__ENCRYPTION_KEY": KEK, "TESSERA_AUDIT_LOG_JSON": "false",
        "TESSERA_BUS__REDIS_URL": redis_url, "TESSERA_BUS__STREAM": stream,
        "TESSERA_BUS__HEARTBEAT": "0.2", "TESSERA_BUS__POLL_INTERVAL": "0.05",
        "TESSERA_SERVER__FORWARDED_ALLOW_IPS": '["127.0.0.1"]',
        "TESSERA_SECURITY__CLIENT_AUTH_FAILURES_PER_MINUTE": str(CLIENT_AUTH_LIMIT),
    }
    procs: list[Proc] = []
    data_dirs = [tmp_path / "instance-1", tmp_path / "instance-2"]
    try:
        for n, (port, data) in enumerate(zip((i1, i2), data_dirs, strict=True), 1):
            data.mkdir()
            proc = await spawn(f"identity-{n}", [TESSERA, "serve", "--host", "127.0.0.1",
                                                 "--port", str(port)],
                               env=env | {"TESSERA_DATA_DIR": str(data)}, cwd=data,
                               log=tmp_path / f"identity-{n}.log")
            procs.append(proc)
        for proc, port in zip(procs, (i1, i2), strict=True):
            await wait_healthy(proc, f"http://127.0.0.1:{port}/healthz", timeout=60)

        prefix = tmp_path / "nginx"
        for sub in ("logs", "temp"):
            (prefix / sub).mkdir(parents=True)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, i1=i1, i2=i2, g1=g1, g2=g2,
                                          identity_port=identity_port,
                                          gateway_port=gateway_port))
        args = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "logs/error.log")]
        check = await asyncio.to_thread(subprocess.run, [*args, "-t", "-q"],
                                        capture_output=True, text=True, timeout=30,
                                        check=False)
        assert check.returncode == 0, f"nginx -t: {check.stderr}"
        lb = await spawn("nginx", args, env=base_env(), cwd=prefix, log=prefix / "nginx.out")
        procs.append(lb)
        await wait_healthy(lb, f"{issuer}/healthz")

        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY)
        verifier = {"TESSERA_VERIFIER_ISSUER": issuer, "TESSERA_VERIFIER_AUDIENCE": AUDIENCE,
                    "TESSERA_VERIFIER_CLIENT_ID": seeded.feed_id,
                    "TESSERA_VERIFIER_CLIENT_SECRET": seeded.feed_secret,
                    "TESSERA_VERIFIER_FEED_HEARTBEAT_TIMEOUT": "2",
                    "TESSERA_VERIFIER_JWKS_MIN_REFETCH": "1"}
        sources = [{"TESSERA_VERIFIER_SOURCE": "redis", "TESSERA_VERIFIER_REDIS_URL": redis_url,
                    "TESSERA_VERIFIER_REDIS_STREAM": stream},
                   {"TESSERA_VERIFIER_SOURCE": "http"}]
        for n, (port, source) in enumerate(zip((g1, g2), sources, strict=True), 1):
            gateway_dir = tmp_path / f"gateway-{n}"
            gateway_dir.mkdir()
            gateway = await spawn(f"gateway-{n}", [TESSERA, "gateway", "--policy", str(policy),
                                                   "--host", "127.0.0.1", "--port", str(port)],
                                  env=base_env() | verifier | source, cwd=gateway_dir,
                                  log=gateway_dir / "gateway.log")
            procs.append(gateway)
            await wait_healthy(gateway, f"http://127.0.0.1:{port}/healthz", timeout=60)
        yield Deployment(issuer, [f"http://127.0.0.1:{p}" for p in (i1, i2)],
                         [f"http://127.0.0.1:{p}" for p in (g1, g2)],
                         f"http://127.0.0.1:{gateway_port}", seeded, env, data_dirs)
    finally:
        for proc in reversed(procs):
            await proc.stop()


async def decide(gateway: str, token: str) -> int:
    """The forward-auth decision of one gateway (as nginx ``auth_request`` asks it)."""
    async with httpx.AsyncClient(base_url=gateway, timeout=5) as http:
        response = await http.get("/forward-auth", headers={
            "authorization": f"Bearer {token}", "x-original-uri": "/api/orders",
            "x-original-method": "GET", "host": "api.example"})
    return response.status_code


async def every_gateway(deployment: Deployment, token: str, expected: int, *,
                        timeout: float = 10.0) -> None:
    for gateway in deployment.gateways:
        async def decided(gateway: str = gateway) -> bool:
            return await decide(gateway, token) == expected
        await poll(decided, timeout=timeout, interval=0.05,
                   what=f"{gateway} answering {expected}")


async def test_two_instances_behind_nginx_share_every_piece_of_state(
        deployment: Deployment) -> None:
    d = deployment
    one, two = d.instances
    seeded = d.seed

    # A browser login through the load balancer: its requests land on both instances.
    tokens = await login(d.issuer, seeded, seeded.usernames[0],
                         scope="openid api:read")
    async with httpx.AsyncClient(timeout=5) as http:
        upstreams = {(await http.get(f"{d.issuer}/healthz")).headers["x-upstream"]
                     for _ in range(4)}
    assert len(upstreams) == 2, upstreams
    await every_gateway(d, tokens["access_token"], 200)
    async with httpx.AsyncClient(base_url=d.gateway_lb, timeout=5) as http:
        via_lb = [await http.get("/forward-auth", headers={
            "authorization": f"Bearer {tokens['access_token']}", "host": "api.example",
            "x-original-uri": "/api/orders", "x-original-method": "GET"}) for _ in range(4)]
    assert {r.status_code for r in via_lb} == {200}
    assert len({r.headers["x-upstream"] for r in via_lb}) == 2

    # Refresh race split across the instances: one rotation, one successor for all.
    old = tokens["refresh_token"]

    async def refresh(base: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            return await http.post("/token", auth=(seeded.web_id, seeded.web_secret),
                                   data={"grant_type": "refresh_token", "refresh_token": old})

    raced = await asyncio.gather(*(refresh(d.instances[i % 2]) for i in range(6)))
    assert [r.status_code for r in raced] == [200] * 6, [r.text for r in raced]
    successors = {r.json()["refresh_token"] for r in raced}
    assert len(successors) == 1 and old not in successors
    async with httpx.AsyncClient(base_url=two, timeout=10) as http:
        onward = await http.post("/token", auth=(seeded.web_id, seeded.web_secret), data={
            "grant_type": "refresh_token", "refresh_token": successors.pop()})
    assert onward.status_code == 200, onward.text

    # A DPoP proof accepted by one instance is a replay at the other.
    key = DPoPKey()
    proof = key.proof("POST", f"{d.issuer}/token", iat=time.time())
    answers = []
    for base in (one, two):
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            answers.append(await http.post(
                "/token", auth=(seeded.svc_id, seeded.svc_secret), headers={"DPoP": proof},
                data={"grant_type": "client_credentials"}))
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["token_type"] == "DPoP"
    assert answers[1].status_code == 400, answers[1].text
    assert answers[1].json()["error"] == "invalid_dpop_proof"

    # A key rotation made on instance 1's host reaches instance 2 and both gateways.
    async def new_token(base: str) -> str:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            response = await http.post("/token", auth=(seeded.svc_id, seeded.svc_secret),
                                       data={"grant_type": "client_credentials"})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    before = kid_of(await new_token(two))
    rotate = await asyncio.create_subprocess_exec(
        TESSERA, "keys", "rotate", env=d.env | {"TESSERA_DATA_DIR": str(d.data_dirs[0])},
        cwd=d.data_dirs[0], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(rotate.communicate(), 30)
    assert rotate.returncode == 0, err.decode()

    async def rotated(base: str) -> str | None:
        token = await new_token(base)
        return token if kid_of(token) != before else None

    for base in (two, one):
        token = await poll(lambda base=base: rotated(base), timeout=10, interval=0.1,
                           what=f"{base} signing with the new key")
        await every_gateway(d, token, 200)

    # A session revoked through either instance is refused by both gateways.
    for n, base in enumerate((one, two)):
        user = await login(d.issuer, seeded, seeded.usernames[1 + n], scope="openid api:read")
        await every_gateway(d, user["access_token"], 200)
        await procs_admin_revoke(base, seeded, sid=claims_of(user["access_token"])["sid"])
        await every_gateway(d, user["access_token"], 401, timeout=5)

    # Client-authentication failures count across the instances.
    statuses = []
    for attempt in range(CLIENT_AUTH_LIMIT + 2):
        async with httpx.AsyncClient(base_url=d.instances[attempt % 2], timeout=10) as http:
            response = await http.post("/token", auth=(seeded.svc_id, "wrong-secret"),
                                       data={"grant_type": "client_credentials"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"], response.text
    assert statuses == [401] * CLIENT_AUTH_LIMIT + [429, 429], statuses
