"""The journey view: from one identifier to every event of that token or request, across
the audit table and the services' decision logs, in time order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson

from tessera.application import admin
from tessera.console.journey import trace
from tessera.core.clock import FixedClock
from tessera.core.secrets import token_hash
from tessera.identity.compose import Identity
from tests.tokens import claims_of
from tests.unit.console.conftest import ConsoleDriver


def _decision_log(path: Path, lines: list[dict[str, Any]]) -> None:
    """What a verifier's ``tessera.audit`` logger writes (one JSON object per line),
    here with a logging prefix and noise around it."""
    with path.open("w") as fh:
        fh.write("not json at all\n")
        for line in lines:
            fh.write("INFO tessera.audit " + orjson.dumps(line).decode() + "\n")
        fh.write('{"event": "access.allowed", "at": "yesterday", "token_hash": "x"}\n')


async def test_a_token_hash_leads_to_issue_decisions_and_the_revocation(
        console: ConsoleDriver, identity: Identity, clock: FixedClock,
        tmp_path: Path) -> None:
    _, tokens = await console.user_session("alice")
    token = tokens["access_token"]
    claims = claims_of(token)
    digest, now = token_hash(token), clock.now()
    clock.advance(2)
    await admin.revoke(identity.admin, sid=claims["sid"], reason="test", actor="test")
    log = tmp_path / "orders.jsonl"
    _decision_log(log, [
        {"event": "access.allowed", "at": now + 1, "service": "orders",
         "route": "GET /orders/{id}", "decision": "allowed", "reason": "valid",
         "token_hash": digest, "jti": claims["jti"], "user_id": claims["sub"],
         "correlation_id": "req-1", "sid_hash": token_hash(claims["sid"])},
        {"event": "access.denied", "at": now + 3, "service": "orders",
         "route": "GET /orders/{id}", "decision": "denied", "reason": "session_revoked",
         "token_hash": digest, "correlation_id": "req-2"},
        {"event": "access.allowed", "at": now + 1, "service": "orders",
         "token_hash": "someone-else", "decision": "allowed"},
    ])
    journey = await trace(identity, digest, decision_logs=[log])
    assert [(s.event, s.service, s.decision) for s in journey.steps] == [
        ("session.created", "identity", ""),
        ("token.issued", "identity", ""),
        ("access.allowed", "orders", "allowed"),
        ("session.revoked", "identity", ""),
        ("access.denied", "orders", "denied"),
    ]
    denied = journey.steps[-1]
    assert denied.rule == "GET /orders/{id}" and denied.fields["reason"] == "session_revoked"
    assert denied.source == "orders.jsonl:3"
    # the same journey from the jti, the correlation id of the allowed request, or the sid
    for needle in (claims["jti"], "req-1", claims["sid"]):
        steps = (await trace(identity, needle, decision_logs=[log])).steps
        assert {"token.issued", "access.allowed", "session.revoked"} <= {
            s.event for s in steps}, needle
    assert (await trace(identity, "nothing-names-this", decision_logs=[log])).steps == []


async def test_an_exchange_joins_the_downstream_token(console: ConsoleDriver,
                                                      identity: Identity,
                                                      tmp_path: Path) -> None:
    await identity.audit.record("token.issued", jti="j-up", user_id="s")
    await identity.audit.record("token.exchanged", subject_token_hash="h-up",
                                token_hash="h-down", jti="j-down", audience=["inventory"])
    log = tmp_path / "services.jsonl"
    _decision_log(log, [
        {"event": "access.allowed", "at": 1.0, "service": "orders", "token_hash": "h-up",
         "jti": "j-up", "decision": "allowed"},
        {"event": "access.denied", "at": 2.0, "service": "inventory", "token_hash": "h-down",
         "decision": "denied", "reason": "insufficient_scope"},
    ])
    steps = (await trace(identity, "h-up", decision_logs=[log])).steps
    assert {(s.event, s.service) for s in steps} == {
        ("token.issued", "identity"), ("token.exchanged", "identity"),
        ("access.allowed", "orders"), ("access.denied", "inventory")}


async def test_an_unreadable_decision_log_is_reported_not_fatal(
        identity: Identity, tmp_path: Path) -> None:
    await identity.audit.record("token.issued", jti="j-1")
    journey = await trace(identity, "j-1", decision_logs=[tmp_path / "missing.jsonl"])
    assert [s.event for s in journey.steps] == ["token.issued"]
    assert journey.notes == ["decision log missing.jsonl not readable (No such file or "
                             "directory)"]


async def test_the_journey_page_shows_service_decision_reason_and_rule(
        console: ConsoleDriver, identity: Identity, tmp_path: Path) -> None:
    await identity.audit.record("token.issued", jti="j-7", user_id="s-7")
    log = tmp_path / "gw.jsonl"
    _decision_log(log, [{"event": "access.denied", "at": 5.0, "service": "edge-gateway",
                         "route": "rule 3: /admin/**", "decision": "denied",
                         "reason": "insufficient_user_authentication", "jti": "j-7"}])
    identity.settings.console.decision_logs = [log]
    await console.admin()
    page = await console.http.get("/console/journey", params={"needle": "j-7"})
    assert page.status_code == 200
    assert "2 events naming" in page.text
    row = re.search(r"<tr><td>[^<]*</td><td>edge-gateway</td>.*?</tr>", page.text)
    assert row, page.text
    assert "insufficient_user_authentication" in row.group(0)
    assert "rule 3: /admin/**" in row.group(0) and "class='denied'" in row.group(0)
    assert "No event names it." in (await console.http.get(
        "/console/journey", params={"needle": "unknown"})).text
