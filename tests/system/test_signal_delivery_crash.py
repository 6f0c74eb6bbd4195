"""Back-channel logout and SSF delivery survive killing the receiver and the identity
service mid-delivery: after both restart, the same tokens arrive — nothing is lost, and
nothing arrives twice with a different ``jti``. Real processes: ``tessera serve`` and a
receiver process, both SIGKILLed while the receiver holds the first delivery unanswered.
Every token that arrived is validated with joserfc against the issuer's JWKS."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.signals_receivers import RelyingParty, validate_set
from tests.system._procs import (
    ROOT,
    claims_of,
    client_token,
    free_port,
    login,
    logout,
    poll,
    seed,
    server_env,
    spawn,
    start_server,
)

RECEIVER = str(ROOT / "tests" / "system" / "_signal_receiver.py")


def _arrivals(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


async def _start_receiver(tmp: Path, port: int, log: Path, delay: float) -> Any:
    proc = await spawn("receiver", [sys.executable, RECEIVER, str(port)],
                       env={"RECEIVER_LOG": str(log), "RECEIVER_DELAY": str(delay),
                            "PATH": "/usr/bin:/bin"}, cwd=tmp, log=tmp / "receiver.log")

    async def up() -> bool:
        try:
            async with httpx.AsyncClient(timeout=0.5) as http:
                return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await poll(up, timeout=15, what="receiver up")
    return proc


async def test_killing_receiver_and_identity_mid_delivery_loses_nothing(
        tmp_path: Path, sqlite_template: Path) -> None:
    data = tmp_path / "data"
    seeded = await seed(data, sqlite_template, users=1)
    port, receiver_port = free_port(), free_port()
    env = server_env(data, port, TESSERA_SIGNALS__TIMEOUT="1",
                     TESSERA_SIGNALS__BACKOFF_BASE="0.2", TESSERA_SIGNALS__POLL_INTERVAL="0.1")
    server = await start_server(data, env)
    listener = f"http://127.0.0.1:{receiver_port}"
    log = tmp_path / "arrivals.jsonl"
    receiver = await _start_receiver(tmp_path, receiver_port, log, delay=60)
    try:
        await server.cli("clients", "backchannel-logout", seeded.web_id,
                         "--backchannel-logout-uri", f"{listener}/rp/logout")
        siem = json.loads(await server.cli("clients", "create", "--name", "siem", "--grant",
                                           "client_credentials", "--scope", "tessera:ssf"))
        token = await client_token(server.url, siem["client_id"], siem["client_secret"],
                                   scope="tessera:ssf")
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            stream = await http.post("/ssf/streams", headers={
                "authorization": f"Bearer {token}"}, json={
                "delivery": {"method": "urn:ietf:rfc:8935",
                             "endpoint_url": f"{listener}/ssf/events"},
                "events_requested": [
                    "https://schemas.openid.net/secevent/caep/event-type/session-revoked"]})
            assert stream.status_code == 201, stream.text
            jwks = (await http.get("/jwks")).json()
        tokens = await login(server.url, seeded, seeded.usernames[0])
        await logout(server.url, tokens["id_token"])

        # both deliveries reach the receiver, which holds them unanswered: kill everything
        await poll(lambda: len(_arrivals(log)) >= 2, timeout=15, what="first arrivals")
        await receiver.kill()
        await server.proc.kill()
        first = {a["kind"]: a["token"] for a in _arrivals(log)}

        receiver = await _start_receiver(tmp_path, receiver_port, log, delay=0)
        started = time.monotonic()
        server = await start_server(data, env)
        await poll(lambda: len(_arrivals(log)) >= 4, timeout=30, what="redelivery")
        assert time.monotonic() - started < 30
    finally:
        await receiver.kill()
        await server.proc.kill()

    arrivals = _arrivals(log)
    for kind in ("logout", "set"):
        sent = [a["token"] for a in arrivals if a["kind"] == kind]
        assert len(sent) >= 2 and set(sent) == {first[kind]}, sent  # same token, same jti
    now = time.time()
    party = RelyingParty(seeded.web_id, server.url, jwks, lambda: now)
    _header, logout_claims = party.validate(first["logout"])
    received = validate_set(first["set"], jwks=jwks, issuer=server.url,
                            audience=siem["client_id"], now=now)
    sid = claims_of(tokens["id_token"])["sid"]
    assert logout_claims["sid"] == sid
    assert received.claims["sub_id"]["session"]["id"] == sid
