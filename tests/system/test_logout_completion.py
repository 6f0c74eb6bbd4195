"""Logout completion as a measured fact, with real processes: verifier agents report what
they applied, ``tessera revoke --wait`` says when every live one had applied the logout,
and names a verifier that stopped reporting once it dropped out of "live"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.system._procs import (
    SESSION_ENDED,
    Agent,
    agents,
    claims_of,
    free_port,
    login,
    poll,
    seed,
    server_env,
    start_server,
)

LIVE = 2.0
"""TESSERA_VERIFIERS__LIVE_SECONDS here; agents report every second."""

pytestmark = pytest.mark.slow


async def test_revoke_wait_reports_every_live_verifier_and_names_the_silent_one(
        tmp_path: Path, sqlite_template: Path) -> None:
    data = tmp_path / "data"
    seeded = await seed(data, sqlite_template, users=3)
    server = await start_server(data, server_env(
        data, free_port(), TESSERA_VERIFIERS__LIVE_SECONDS=str(LIVE)))
    try:
        sessions = [await login(server.url, seeded, name) for name in seeded.usernames]
        async with agents(server, seeded, 3, source="http", tmp=tmp_path) as pool:
            # every agent has reported at least once (its first report follows the snapshot)
            for agent in pool:
                await poll(lambda a=agent: _reported(a), timeout=10, what="a first report")
            sid = claims_of(sessions[0]["access_token"])["sid"]
            result = json.loads(await server.cli("revoke", "--sid", sid, "--yes",
                                                 "--json", "--wait", "--timeout", "10"))
            completion = result["completion"]
            assert completion["done"], completion
            assert completion["verifiers"] == 3 and len(completion["applied"]) == 3
            assert completion["summary"].startswith("applied at 3/3 verifiers in ")
            assert completion["seconds"] < 5
            for agent in pool:
                assert await agent.rejects(sessions[0]["access_token"]) in SESSION_ENDED

            await pool[2].proc.kill()  # SIGKILL: it stops reporting
            sid = claims_of(sessions[1]["access_token"])["sid"]
            text = await server.cli("revoke", "--sid", sid, "--yes", "--wait",
                                    "--timeout", str(LIVE * 4))
            assert "applied at 2/2 verifiers" in text, text
            assert "not live: agent2-" in text, text
    finally:
        await server.stop()


async def _reported(agent: Agent) -> bool:
    return (await agent.status())["reported"] is not None
