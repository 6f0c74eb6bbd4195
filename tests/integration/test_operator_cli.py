"""Operator CLI (`tessera sessions ls|show|revoke`, `tessera revoke ...`) against a real
SQLite file, through the CLI in a subprocess; effects are read back from the outbox
(``revocation_events``) and the audit table."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tessera.core.refresh import RefreshFamily, RefreshToken
from tessera.core.sessions import Session
from tessera.core.users import User
from tessera.store.migrations import upgrade_database
from tessera.store.sql import create_store

NOW = 1_800_000_000.0


def tessera(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TESSERA_DATA_DIR": str(data), "TESSERA_ISSUER": "http://t.test"}
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@dataclass
class Seeded:
    alice: User
    alice_sessions: list[Session]
    family: RefreshFamily
    bob: User
    carol: User
    """In tenant ``other``."""
    crowd: list[Session]
    """Sessions of the ``crowd`` user in tenant ``acme``."""


def _user(name: str, tenant: str) -> User:
    return User(user_id=f"u-{name}", username=name, tenant_id=tenant,
                password_hash="$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA", created_at=NOW)


def _session(user: User, n: int) -> Session:
    return Session(sid=f"sid-{user.username}-{n:04d}", user_id=user.user_id,
                   tenant_id=user.tenant_id, sv=1, acr="urn:tessera:acr:pwd", amr=("pwd",),
                   auth_time=NOW + n, created_at=NOW + n, last_seen_at=NOW + n,
                   user_agent="pytest")


async def _seed(url: str, crowd_size: int) -> Seeded:
    alice, bob, crowd = _user("alice", "acme"), _user("bob", "acme"), _user("crowd", "acme")
    carol = _user("carol", "other")
    alice_sessions = [_session(alice, 1), _session(alice, 2)]
    family = RefreshFamily(family_id="fam-alice-1", sid=alice_sessions[0].sid, client_id="app",
                           user_id=alice.user_id, tenant_id="acme",
                           scope=frozenset({"openid"}), audience=("https://api.test",),
                           created_at=NOW, expires_at=NOW + 86400 * 365 * 10)
    crowd_sessions = [_session(crowd, n) for n in range(crowd_size)]
    store = create_store(url)
    try:
        async with store.unit_of_work() as uow:
            for user in (alice, bob, crowd, carol):
                await uow.users.add(user)
            for session in [*alice_sessions, _session(bob, 1), _session(carol, 1),
                            *crowd_sessions]:
                await uow.sessions.add(session, browser_handle_hash=None)
            await uow.refresh.add_family(family)
            await uow.refresh.add_token(RefreshToken(
                token_hash="rt-0", family_id=family.family_id, generation=0,
                issued_at=NOW, expires_at=NOW + 86400 * 365 * 10, access_jti="jti-0"))
            await uow.refresh.add_token(RefreshToken(
                token_hash="rt-1", family_id=family.family_id, generation=1,
                issued_at=NOW + 30, expires_at=NOW + 86400 * 365 * 10, access_jti="jti-1"))
    finally:
        await store.close()
    return Seeded(alice, alice_sessions, family, bob, carol, crowd_sessions)


def seed(data: Path, crowd_size: int = 0) -> Seeded:
    data.mkdir(parents=True)
    url = f"sqlite:///{data / 'tessera.db'}"
    upgrade_database(url)
    return asyncio.run(_seed(url, crowd_size))


def outbox(data: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(data / "tessera.db") as db:
        rows = db.execute("SELECT seq, kind, key, data FROM revocation_events ORDER BY seq")
        return [{"seq": s, "kind": k, "key": key, "data": json.loads(d)}
                for s, k, key, d in rows.fetchall()]


def audit_rows(data: Path, event: str) -> list[dict[str, Any]]:
    with sqlite3.connect(data / "tessera.db") as db:
        rows = db.execute("SELECT fields FROM audit_events WHERE event = ? ORDER BY id",
                          (event,))
        return [json.loads(f) for (f,) in rows.fetchall()]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_sessions_ls_filters_and_prints_a_table(data: Path) -> None:
    s = seed(data)
    every = ok(tessera(data, "sessions", "ls", "--json"))
    assert [r["sid"] for r in every] == [  # newest first, then by sid
        "sid-alice-0002", "sid-alice-0001", "sid-bob-0001", "sid-carol-0001"]
    by_tenant = ok(tessera(data, "sessions", "ls", "--tenant", "acme", "--json"))
    assert {r["username"] for r in by_tenant} == {"alice", "bob"}
    by_name = ok(tessera(data, "sessions", "ls", "--username", "alice", "--json"))
    assert [r["sid"] for r in by_name] == ["sid-alice-0002", "sid-alice-0001"]
    by_id = ok(tessera(data, "sessions", "ls", "--user-id", s.carol.user_id, "--json"))
    assert [(r["tenant_id"], r["active"]) for r in by_id] == [("other", True)]
    assert ok(tessera(data, "sessions", "ls", "--username", "alice", "--tenant", "other",
                      "--json")) == []

    table = tessera(data, "sessions", "ls", "--tenant", "acme")
    assert table.returncode == 0, table.stderr
    header, rule, *lines = table.stdout.splitlines()
    assert header.split()[:3] == ["SID", "USER", "TENANT"] and set(rule) <= {"-", " "}
    assert len(lines) == 3 and any("alice" in line and "active" in line for line in lines)
    assert "no sessions match" in tessera(data, "sessions", "ls", "--tenant", "nope").stdout
    both = tessera(data, "sessions", "ls", "--user-id", "x", "--username", "y")
    assert both.returncode == 2 and "not both" in both.stderr


def test_sessions_show_and_revoke_one_session(data: Path) -> None:
    s = seed(data)
    sid = s.alice_sessions[0].sid
    shown = ok(tessera(data, "sessions", "show", "--json", "--", sid))
    assert (shown["username"], shown["active"], shown["sv"]) == ("alice", True, 1)
    (family,) = shown["families"]
    assert family["family_id"] == s.family.family_id and family["active"] is True
    assert family["last_refreshed_at"] == NOW + 30
    text = tessera(data, "sessions", "show", "--", sid)
    assert text.returncode == 0 and s.family.family_id in text.stdout
    assert "alice" in text.stdout and f"tessera audit trace {sid}" in text.stdout
    missing = tessera(data, "sessions", "show", "no-such-sid")
    assert missing.returncode == 2 and "no session" in missing.stderr

    assert ok(tessera(data, "sessions", "revoke", "--reason", "stolen", "--json", "--", sid)) \
        == {"sessions": 1}
    events = outbox(data)
    assert [(e["kind"], e["key"]) for e in events] == [
        ("family.revoked", s.family.family_id), ("session.revoked", sid)]
    assert events[1]["data"]["reason"] == "stolen"
    (row,) = audit_rows(data, "session.revoked")
    assert (row["sid"], row["actor"], row["reason"], row["tenant_id"]) == (
        sid, "cli", "stolen", "acme")
    again = tessera(data, "sessions", "revoke", "--sid", sid)
    assert again.returncode == 0 and "nothing revoked" in again.stdout
    other = s.alice_sessions[1].sid
    assert ok(tessera(data, "sessions", "bump", "--", other)) == {"sessions": 1}  # SID or --sid
    assert ok(tessera(data, "sessions", "bump", "--sid", other)) == {"sessions": 1}
    neither = tessera(data, "sessions", "bump")
    assert neither.returncode == 2 and "exactly one session" in neither.stderr
    active = ok(tessera(data, "sessions", "ls", "--username", "alice", "--json"))
    assert [r["sid"] for r in active] == [s.alice_sessions[1].sid]
    every = ok(tessera(data, "sessions", "ls", "--username", "alice", "--all", "--json"))
    assert {r["sid"]: r["revoke_reason"] for r in every} == {
        s.alice_sessions[1].sid: None, sid: "stolen"}
    assert "revoked" in tessera(data, "sessions", "ls", "--username", "alice", "--all").stdout


def test_revoke_family_keeps_the_session_and_is_traceable(data: Path) -> None:
    s = seed(data)
    fid = s.family.family_id
    done = ok(tessera(data, "revoke", "--family-id", fid, "--reason", "leaked", "--yes",
                      "--json"))
    assert (done["target"], done["families"], done["sid"]) == ("family", 1, s.family.sid)
    assert [(e["kind"], e["key"], e["data"]["client_id"]) for e in outbox(data)] == [
        ("family.revoked", fid, "app")]
    (row,) = audit_rows(data, "token.revoked")
    assert (row["family_id"], row["token_type"], row["actor"], row["reason"]) == (
        fid, "refresh_token", "cli", "leaked")
    session = ok(tessera(data, "sessions", "show", "--json", "--", s.family.sid))
    assert session["active"] is True and session["families"][0]["active"] is False
    trail = ok(tessera(data, "audit", "trace", "--json", "--", fid))
    assert [e["event"] for e in trail] == ["token.revoked"]
    again = ok(tessera(data, "revoke", "--family", fid, "--yes", "--json"))  # older spelling
    assert again["nothing_to_revoke"] is True and len(outbox(data)) == 1


def test_revoke_user_by_username_or_id(data: Path) -> None:
    s = seed(data)
    done = ok(tessera(data, "revoke", "--user-id", "alice", "--yes", "--json"))
    assert (done["target"], done["user_id"], done["sessions"]) == ("user", s.alice.user_id, 2)
    kinds = [(e["kind"], e["key"]) for e in outbox(data)]
    assert kinds.count(("user.revoked", s.alice.user_id)) == 1
    assert {k for k, key in kinds if k == "session.revoked"} == {"session.revoked"}
    assert len(audit_rows(data, "session.revoked")) == 2
    by_id = tessera(data, "revoke", "--user-id", s.bob.user_id, "--yes")
    assert by_id.returncode == 0 and "revoked 1 session(s)" in by_id.stdout
    unknown = tessera(data, "revoke", "--user", "nobody", "--yes")
    assert unknown.returncode == 2 and "no user" in unknown.stderr


def test_revoke_tenant_cuts_it_off_in_batches_with_progress(data: Path) -> None:
    s = seed(data, crowd_size=230)
    before = len(outbox(data))
    assert before == 0
    done = tessera(data, "revoke", "--tenant", "acme", "--reason", "compromise", "--yes",
                   "--json")
    result = ok(done)
    assert (result["target"], result["tenant_id"], result["sessions"]) == ("tenant", "acme",
                                                                          233)
    assert "revoking sessions of acme" in done.stderr  # progress (on stderr: JSON stays clean)
    events = outbox(data)
    assert events[0]["kind"] == "tenant.revoked" and events[0]["key"] == "acme"
    assert events[0]["data"]["reason"] == "compromise" and "before" in events[0]["data"]
    revoked = [e["key"] for e in events if e["kind"] == "session.revoked"]
    assert len(revoked) == len(set(revoked)) == 233
    assert s.crowd[0].sid in revoked and all("carol" not in sid for sid in revoked)
    assert [e["key"] for e in events if e["kind"] == "family.revoked"] == [s.family.family_id]
    (tenant_row,) = audit_rows(data, "tenant.revoked")
    assert (tenant_row["tenant_id"], tenant_row["sessions"], tenant_row["actor"]) == (
        "acme", 233, "cli")
    assert len(audit_rows(data, "session.revoked")) == 233
    assert ok(tessera(data, "sessions", "ls", "--tenant", "acme", "--json")) == []
    assert len(ok(tessera(data, "sessions", "ls", "--tenant", "other", "--json"))) == 1
    verify = tessera(data, "audit", "verify")
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stderr

    # repeating is harmless: one more cut-off event, no session left to revoke
    again = ok(tessera(data, "revoke", "--tenant", "acme", "--yes", "--json"))
    assert again["sessions"] == 0
    assert [e["kind"] for e in outbox(data)[len(events):]] == ["tenant.revoked"]


def test_revoke_asks_first_and_checks_its_arguments(data: Path) -> None:
    seed(data)
    declined = tessera(data, "revoke", "--tenant", "acme", stdin="n\n")
    assert declined.returncode == 1 and "Revoke EVERY token of tenant 'acme'" in declined.stderr
    assert "3 active session(s)" in declined.stderr
    no_terminal = tessera(data, "revoke", "--sid", "sid-bob-0001")
    assert no_terminal.returncode == 1 and "Aborted" in no_terminal.stderr
    assert outbox(data) == []
    accepted = tessera(data, "revoke", "--session", "sid-bob-0001", stdin="y\n")
    assert accepted.returncode == 0 and "revoked session sid-bob-0001" in accepted.stdout
    assert [e["kind"] for e in outbox(data)] == ["session.revoked"]
    for args in ((), ("--user-id", "alice", "--tenant", "acme")):
        wrong = tessera(data, "revoke", *args, "--yes")
        assert wrong.returncode == 2 and "exactly one" in wrong.stderr
    missing = tessera(data, "revoke", "--sid", "no-such-sid", "--yes")
    assert missing.returncode == 2 and "no session" in missing.stderr
    done = ok(tessera(data, "revoke", "--session", "sid-bob-0001", "--yes", "--json"))
    assert done["nothing_to_revoke"] is True

