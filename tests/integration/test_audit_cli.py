"""`tessera audit verify|tail|trace` against a real SQLite file, through the CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.core.secrets import token_hash


def tessera(data: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TESSERA_DATA_DIR": str(data), "TESSERA_ISSUER": "http://t.test"}
    return subprocess.run([sys.executable, "-m", "tessera.cli.main", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_verify_detects_tampering_and_trace_follows_a_needle(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = tessera(data, "clients", "create", "--name", "a", "--grant", "client_credentials")
    assert created.returncode == 0, created.stderr
    client_id = json.loads(created.stdout)["client_id"]
    assert tessera(data, "users", "create", "--username", "u", "--password-stdin",
                   stdin="a long password\n").returncode == 0
    ok = tessera(data, "audit", "verify")
    assert ok.returncode == 0 and "intact: 2 rows" in ok.stdout, ok.stdout + ok.stderr
    tail = tessera(data, "audit", "tail", "--json")
    assert [e["event"] for e in json.loads(tail.stdout)] == ["client.created", "user.created"]
    traced = tessera(data, "audit", "trace", client_id, "--json")
    assert traced.returncode == 0
    assert [e["event"] for e in json.loads(traced.stdout)] == []  # "client_id" is no trace field
    assert "no audit events" in tessera(data, "audit", "trace", token_hash("x")).stdout

    with sqlite3.connect(data / "tessera.db") as db:
        db.execute("UPDATE audit_events SET fields = '{\"name\": \"evil\"}' WHERE id = 1")
    broken = tessera(data, "audit", "verify")
    assert broken.returncode == 1 and "row 1" in broken.stderr


def test_a_long_trail_shows_progress_on_stderr_only(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tessera.cli import audit
    from tests.integration.test_trust_cli import run

    data = tmp_path / "data"
    for name in ("a", "b", "c"):
        made = run(data, "clients", "create", "--name", name, "--grant", "client_credentials")
        assert made.exit_code == 0, made.output
    quiet = run(data, "audit", "verify")
    assert quiet.stdout == "audit chain intact: 3 rows, head " + quiet.stdout.split()[-1] + "\n"
    assert "verifying" not in quiet.stderr  # 3 rows: no bar
    monkeypatch.setattr(audit, "SCAN_PROGRESS_FROM", 3)
    shown = run(data, "audit", "verify")
    assert shown.stdout == quiet.stdout
    assert "verifying the hash chain" in shown.stderr and "3/3" in shown.stderr
    traced = run(data, "audit", "tail", "--json")
    assert [e["event"] for e in json.loads(traced.stdout)] == ["client.created"] * 3
    assert "reading the audit trail" in traced.stderr
