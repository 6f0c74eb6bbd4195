"""The trust-boundary CLI verbs against a real SQLite file (issue 9, items 1, 3, 5, 6):
``tessera tenants create|ls|suspend|resume TENANT``, ``tessera users grant-role|
revoke-role|disable|enable|delete|set-password|ls|show``, ``tessera clients disable|
enable|delete|rotate-secret`` and ``clients create --third-party --subject-audience``.

Commands run in-process through click's runner on the ``cli`` group the installed
``tessera`` command runs (a subprocess costs seconds here); effects are read back from
the outbox (``revocation_events``) and the tables."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tessera.cli.main import cli
from tessera.core.sessions import Session
from tessera.store.sql import create_store
from tests.conftest import FAST_PASSWORDS

NOW = 1_800_000_000.0


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every in-process command would migrate the file and hash passwords at full argon2
    cost; migrate each file once and hash cheaply (the verbs under test are the same)."""
    from tessera.cli import _common

    migrated: set[str] = set()
    upgrade = _common.upgrade_database

    def once(url: str) -> None:
        if url not in migrated:
            upgrade(url)
            migrated.add(url)

    monkeypatch.setattr(_common, "upgrade_database", once)
    monkeypatch.setattr("tessera.identity.compose.PasswordHasher", lambda: FAST_PASSWORDS)


def run(data: Path, *args: str, stdin: str = "") -> Result:
    env = {"TESSERA_DATA_DIR": str(data), "TESSERA_ISSUER": "http://t.test"}
    return CliRunner().invoke(cli, list(args), input=stdin, env=env, catch_exceptions=False)


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert "error: " in result.stderr and message in result.stderr, result.stderr


def outbox(data: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data / "tessera.db") as db:
        return list(db.execute("SELECT kind, key FROM revocation_events ORDER BY seq"))


def a_session(data: Path, user_id: str, tenant: str, sid: str) -> None:
    """A live session of the user, as a login would have opened."""
    async def add() -> None:
        store = create_store(f"sqlite:///{data / 'tessera.db'}")
        try:
            async with store.unit_of_work() as uow:
                await uow.sessions.add(Session(
                    sid=sid, user_id=user_id, tenant_id=tenant, sv=1,
                    acr="urn:tessera:acr:pwd", amr=("pwd",), auth_time=NOW, created_at=NOW,
                    last_seen_at=NOW), browser_handle_hash=None)
        finally:
            await store.close()

    asyncio.run(add())


def a_user(data: Path, username: str, tenant: str) -> str:
    created = ok(run(data, "users", "create", "--username", username, "--password-stdin",
                     "--tenant", tenant, stdin="a long password\n"))
    return str(created["user_id"])


def test_tenants_create_ls_suspend_resume(data: Path) -> None:
    created = ok(run(data, "tenants", "create", "acme", "--name", "Acme Corp"))
    assert (created["tenant_id"], created["name"], created["status"]) == (
        "acme", "Acme Corp", "active")
    refused(run(data, "tenants", "create", "acme"), "exists already")
    alice = a_user(data, "alice", "acme")
    a_session(data, alice, "acme", "sid-alice")
    listed = {t["tenant_id"]: t["status"] for t in ok(run(data, "tenants", "ls"))}
    assert listed == {"acme": "active", "default": "active"}

    suspended = ok(run(data, "tenants", "suspend", "acme"))
    assert suspended["sessions_revoked"] == 1 and suspended["status"] == "suspended"
    assert outbox(data)[:2] == [("tenant.revoked", "acme"), ("session.revoked", "sid-alice")]
    assert {t["tenant_id"]: t["status"] for t in ok(run(data, "tenants", "ls"))}[
        "acme"] == "suspended"
    resumed = ok(run(data, "tenants", "resume", "acme"))
    assert resumed == {"tenant_id": "acme", "status": "active", "resumed": True}
    refused(run(data, "tenants", "suspend", "nowhere"), "no tenant")
    refused(run(data, "tenants", "resume", "nowhere"), "no tenant")
    missing = run(data, "tenants", "suspend")
    assert missing.exit_code == 2  # TENANT is a required argument


def test_users_roles_and_lifecycle(data: Path) -> None:
    bob = a_user(data, "bob", "acme")
    a_session(data, bob, "acme", "sid-bob")
    granted = ok(run(data, "users", "grant-role", "--username", "bob", "--role",
                     "tenant-admin", "--tenant", "acme"))
    assert granted["roles"] == ["tenant-admin"] and granted["changed"] is True
    refused(run(data, "users", "grant-role", "--username", "bob", "--role", "root",
                "--tenant", "acme"), "unknown role")
    refused(run(data, "users", "grant-role", "--username", "bob", "--role", "support"),
            "no user 'bob' in tenant 'default'")
    listed = ok(run(data, "users", "ls", "--tenant", "acme"))
    assert [(u["username"], u["roles"]) for u in listed] == [("bob", ["tenant-admin"])]

    revoked = ok(run(data, "users", "revoke-role", "--username", "bob", "--role",
                     "tenant-admin", "--tenant", "acme"))
    assert revoked["roles"] == [] and revoked["changed"] is True
    assert ("session.version_bumped", "sid-bob") in outbox(data)

    disabled = ok(run(data, "users", "disable", "--username", "bob", "--tenant", "acme"))
    assert disabled["status"] == "disabled" and disabled["sessions_revoked"] == 1
    assert ("user.revoked", bob) in outbox(data) and ("session.revoked", "sid-bob") in \
        outbox(data)
    shown = ok(run(data, "users", "show", "--username", "bob", "--tenant", "acme"))
    assert shown["disabled"] is True and shown["active_sessions"] == 0
    assert ok(run(data, "users", "enable", "--username", "bob", "--tenant", "acme"))[
        "status"] == "active"

    before = len(outbox(data))
    reset = ok(run(data, "users", "set-password", "--username", "bob", "--password-stdin",
                   "--tenant", "acme", stdin="another long password\n"))
    assert reset["events"] == ["user.revoked"] and outbox(data)[before:] == [
        ("user.revoked", bob)]
    refused(run(data, "users", "set-password", "--username", "bob", "--password-stdin",
                "--tenant", "acme", stdin="short\n"), "at least 8")

    deleted = ok(run(data, "users", "delete", "--username", "bob", "--tenant", "acme"))
    assert deleted["status"] == "deleted"
    refused(run(data, "users", "show", "--username", "bob", "--tenant", "acme"), "no user")
    assert ok(run(data, "users", "ls", "--tenant", "acme")) == []
    a_user(data, "bob", "acme")  # the name is free again


def test_clients_lifecycle(data: Path) -> None:
    made = ok(run(data, "clients", "create", "--name", "partner", "--grant",
                  "authorization_code", "--redirect-uri", "https://partner.example/cb",
                  "--third-party", "--subject-audience", "https://edge.example",
                  "--tenant", "acme"))
    assert made["third_party"] is True and made["tenant_id"] == "acme"
    assert made["subject_audiences"] == ["https://edge.example"]
    client_id = made["client_id"]
    listed = {c["client_id"]: c for c in ok(run(data, "clients", "ls"))}
    assert listed[client_id]["third_party"] is True and listed[client_id]["disabled"] is False

    rotated = ok(run(data, "clients", "rotate-secret", client_id))
    assert rotated["client_secret"] and rotated["client_secret"] != made["client_secret"]
    assert outbox(data) == [("client.revoked", client_id)]
    assert ok(run(data, "clients", "disable", client_id))["status"] == "disabled"
    assert ok(run(data, "clients", "ls"))[0]["disabled"] is True
    assert ok(run(data, "clients", "enable", "--client-id", client_id))["status"] == "active"
    deleted = ok(run(data, "clients", "delete", "--client-id", client_id))
    assert deleted["status"] == "deleted" and outbox(data)[-1] == ("client.revoked", client_id)
    refused(run(data, "clients", "delete", client_id), "no client")
    refused(run(data, "clients", "disable", "a", "--client-id", "b"), "give CLIENT_ID once")
    refused(run(data, "clients", "disable"), "missing CLIENT_ID")
    public = ok(run(data, "clients", "create", "--name", "spa", "--grant",
                    "authorization_code", "--redirect-uri", "https://spa.example/cb",
                    "--public"))
    refused(run(data, "clients", "rotate-secret", public["client_id"]), "public client")
