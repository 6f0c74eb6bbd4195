"""Key rotation while traffic flows: no request fails because of the rotation.

Tokens are issued continuously by ``tessera serve`` and verified at once by verifier
processes (``Verifier`` + ``JwksCache``, following the HTTP feed), while ``tessera keys
rotate`` runs twice in another process. The server picks the new active key up within
``keys.reload_seconds``; verifiers learn it from the JWKS, which publishes the ``next``
key before it signs, refetched on the ``key.rotated`` event or on an unknown ``kid``.
Tokens signed before a rotation keep verifying (the old key is ``retiring``, still
published).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.system._procs import (
    Agent,
    agents,
    free_port,
    kid_of,
    seed,
    server_env,
    start_server,
)

WORKERS = 4
"""Concurrent issue-and-verify loops."""


@pytest.mark.parametrize("min_refetch", [
    1.0,
    10.0,
], ids=["refetch-1s", "sdk-default-10s"])
async def test_two_rotations_under_load_fail_no_request(min_refetch: float, tmp_path: Path,
                                                        sqlite_template: Path) -> None:
    data = tmp_path / "data"
    seeded = await seed(data, sqlite_template, users=0)
    env = server_env(data, free_port())  # default reload: the rotation event drives it
    server = await start_server(data, env)
    failures: list[dict[str, Any]] = []
    kids: Counter[str] = Counter()
    issued: list[str] = []
    stop = asyncio.Event()

    async def load(pool: list[Agent], http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            response = await http.post("/token", data={"grant_type": "client_credentials"},
                                       auth=(seeded.svc_id, seeded.svc_secret))
            if response.status_code != 200:
                failures.append({"issue": response.status_code, "body": response.text})
                continue
            token = response.json()["access_token"]
            issued.append(token)
            old = issued[len(issued) // 3]  # an older token, maybe signed by a former key
            for agent in pool:
                for candidate in (token, old):
                    reply = await agent.check(candidate)
                    if not reply["ok"]:
                        failures.append(reply)
                    elif candidate is token:
                        kids[reply["kid"]] += 1

    async def newest_kid(http: httpx.AsyncClient) -> str:
        """The kid the server signs with right now (from a fresh token)."""
        response = await http.post("/token", data={"grant_type": "client_credentials"},
                                   auth=(seeded.svc_id, seeded.svc_secret))
        assert response.status_code == 200, response.text
        return kid_of(response.json()["access_token"])

    try:
        async with agents(server, seeded, 2, source="http", tmp=tmp_path,
                          extra=("--jwks-min-refetch", str(min_refetch))) as pool, \
                httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            first_kid = await newest_kid(http)
            workers = [asyncio.create_task(load(pool, http)) for _ in range(WORKERS)]
            try:
                seen = [first_kid]
                for _ in range(2):
                    await asyncio.sleep(0.5)
                    await server.cli("keys", "rotate")
                    deadline = time.monotonic() + 5
                    while (kid := await newest_kid(http)) == seen[-1]:
                        assert time.monotonic() < deadline, "the server kept the old key"
                        await asyncio.sleep(0.05)
                    seen.append(kid)
                    if failures:
                        break
                    # traffic signed with the new key for a while
                    while kids[kid] < 20 and not failures:
                        assert time.monotonic() < deadline + 5, ("no traffic on the new key",
                                                                 failures[:3])
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
            finally:
                stop.set()
                await asyncio.gather(*workers)
            statuses = [await agent.status() for agent in pool]
    finally:
        await server.stop()

    assert not failures, failures[:5]
    assert len(set(seen)) == 3, seen
    for kid in seen:
        assert kids[kid] > 0, (kid, kids)
    assert sum(kids.values()) > 100, kids
    for status in statuses:
        assert status["key_epoch"] == 2, status
