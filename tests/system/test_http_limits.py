"""The bounds of every HTTP server Tessera starts, on the real commands: ``tessera serve``
(the OAuth endpoints and the admin console) and ``tessera gateway``, spoken to with raw
sockets. Oversized request heads get 431, slow ones 408, connections past the bound 503,
with the limits read from ``TESSERA_SERVER__*`` and ``TESSERA_GATEWAY_SERVER__*``.
(tests/integration/test_httpserver.py covers the protocol itself in depth.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.raw_http import exchange, get
from tests.system._nginx import start_gateway, verifier_env
from tests.system._procs import (
    AUDIENCE,
    Proc,
    Server,
    free_port,
    seed,
    server_env,
    start_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

HEADER_TIMEOUT = 1.0
MAX_CONNECTIONS = 6


@dataclass
class Servers:
    identity: Server
    gateway: Proc
    ports: dict[str, int]
    """``identity`` and ``gateway`` → port."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
                  ) -> AsyncIterator[Servers]:
    tmp = tmp_path_factory.mktemp("http-limits")
    data = tmp / "identity"
    seeded = await seed(data, sqlite_template, users=1)
    identity_port, gateway_port = free_port(), free_port()
    identity = await start_server(data, server_env(
        data, identity_port, TESSERA_SERVER__HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        TESSERA_SERVER__MAX_CONNECTIONS=str(MAX_CONNECTIONS)))
    try:
        policy = tmp / "policy.yaml"
        policy.write_text('routes:\n  - match: {path: "/public/**"}\n    public: true\n')
        env = verifier_env(identity.url, AUDIENCE, seeded.feed_id, seeded.feed_secret) | {
            "TESSERA_GATEWAY_SERVER__HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "TESSERA_GATEWAY_SERVER__MAX_CONNECTIONS": str(MAX_CONNECTIONS)}
        gateway = await start_gateway(gateway_port, policy=policy, tmp=tmp, env=env)
        try:
            yield Servers(identity, gateway, {"identity": identity_port,
                                              "gateway": gateway_port})
        finally:
            await gateway.stop()
    finally:
        await identity.stop()


PATHS = {"identity": ["/authorize", "/token", "/console/", "/healthz"],
         "gateway": ["/forward-auth", "/healthz"]}
HONEST = {"identity": get("/healthz"),
          "gateway": get("/forward-auth", b"X-Original-URI: /public/x")}


@pytest.mark.parametrize("server", ["identity", "gateway"])
async def test_oversized_headers_get_431(servers: Servers, server: str) -> None:
    port = servers.ports[server]
    assert (await exchange(port, HONEST[server])).status == 200
    over = 32 * 1024 if server == "identity" else 64 * 1024
    for path in PATHS[server]:
        cookie = await exchange(port, get(path, b"Cookie: a=" + b"x" * over))
        assert cookie.status == 431, (path, cookie.raw[:200])
        assert cookie.headers["connection"] == "close"
        many = await exchange(port, get(path, *(b"X-H%d: %s" % (i, b"y" * 1000)
                                                for i in range(over // 1000 + 1))))
        assert many.status == 431, (path, many.raw[:200])
    assert (await exchange(port, HONEST[server])).status == 200  # still serving


@pytest.mark.parametrize("server", ["identity", "gateway"])
async def test_slow_headers_get_408(servers: Servers, server: str) -> None:
    port = servers.ports[server]
    trickle = [bytes([c]) for c in get(PATHS[server][0], b"X-Slow: " + b"s" * 30)]
    slow = await exchange(port, *trickle, pause=0.05, timeout=10)
    assert slow.status == 408, slow.raw
    assert HEADER_TIMEOUT * 0.8 <= slow.elapsed < HEADER_TIMEOUT + 8, slow.elapsed


@pytest.mark.parametrize("server", ["identity", "gateway"])
async def test_connections_past_the_bound_get_503(servers: Servers, server: str) -> None:
    port = servers.ports[server]
    await _wait_until_idle(port)
    held = [await asyncio.open_connection("127.0.0.1", port)
            for _ in range(MAX_CONNECTIONS)]
    try:
        refused = await exchange(port, HONEST[server])
        assert refused.status == 503, refused.raw
        assert refused.headers["retry-after"] == "1"
    finally:
        for _, writer in held:
            writer.close()
    await _wait_until_idle(port)


async def _wait_until_idle(port: int, timeout: float = 10.0) -> None:
    """Until a request is served: the server has let go of earlier connections."""
    deadline = time.monotonic() + timeout
    while (await exchange(port, get("/healthz"))).status != 200:
        assert time.monotonic() < deadline, "the server kept refusing connections"
        await asyncio.sleep(0.05)
