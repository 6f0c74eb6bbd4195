"""Failed-password throttling shared by two ``tessera serve`` processes through a real
Redis: attempts at one account alternate between the instances, and the account is held
after the limit on both, as if there were one server."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, require_service
from tests.support import REDIRECT, pkce_pair
from tests.system._procs import PASSWORD, Seed, free_port, seed, server_env, start_server

pytestmark = [pytest.mark.slow, pytest.mark.redis]


async def attempt(url: str, seeded: Seed, username: str, password: str) -> int:
    _, challenge = pkce_pair()
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        page = await http.get("/authorize", params={
            "response_type": "code", "client_id": seeded.web_id, "redirect_uri": REDIRECT,
            "scope": "openid", "state": "s", "code_challenge": challenge,
            "code_challenge_method": "S256"})
        assert page.status_code == 200, page.text
        form = dict(re.findall(r"name='([^']+)' value='([^']*)'", page.text))
        response = await http.post("/authorize", data=form | {"username": username,
                                                                 "password": password})
        return response.status_code


async def test_two_instances_count_one_accounts_failures_together(
        tmp_path: Path, sqlite_template: Path) -> None:
    redis_url = require_service(REDIS_URL, "Redis")
    data = tmp_path / "identity"
    seeded = await seed(data, sqlite_template, users=2)
    limits = {"TESSERA_SECURITY__LOGIN_ATTEMPTS_PER_MINUTE": "4",
              "TESSERA_SECURITY__THROTTLE_KEY_PREFIX": f"tessera-test-{uuid.uuid4().hex}"}
    stream = f"tessera:test:{uuid.uuid4().hex}"
    servers = []
    try:
        for name in ("a", "b"):
            servers.append(await start_server(data, server_env(
                data, free_port(), redis_url=redis_url, stream=stream, **limits), name=name))
        a, b = (server.url for server in servers)
        alice, bob = seeded.usernames
        statuses = [await attempt(url, seeded, alice, "wrong") for url in (a, b, a, b)]
        assert statuses == [401] * 4
        assert await attempt(a, seeded, alice, PASSWORD) == 429
        assert await attempt(b, seeded, alice, PASSWORD) == 429
        assert await attempt(b, seeded, bob, PASSWORD) == 303
    finally:
        for server in servers:
            await server.stop()
    for server in servers:
        assert "storage failed" not in server.proc.log_tail(200)
