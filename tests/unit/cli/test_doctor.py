"""``tessera doctor [--json]``: every check reports what is wrong with a fix, exits 1 on
a failure (0 with warnings only) and changes nothing."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tessera.cli.main import cli
from tessera.keys import Sealer
from tessera.store.migrations import upgrade_database
from tessera.store.sql import create_store
from tests.conftest import POSTGRES_URL, REDIS_URL, require_service


def doctor(env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["doctor", "--json"], env=env)
    return result.exit_code, json.loads(result.output)


def statuses(report: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for check in report["checks"]:
        found.setdefault(check["check"], []).append(check["status"])
    return found


def finding(report: dict[str, Any], check: str, status: str) -> dict[str, Any]:
    matches = [c for c in report["checks"] if c["check"] == check and c["status"] == status]
    assert matches, report
    return matches[0]


def test_a_fresh_checkout_has_warnings_only_and_nothing_is_created(workdir: Path) -> None:
    code, report = doctor()
    assert code == 0 and report["ok"] is True
    assert statuses(report) == {"settings": ["ok"], "issuer": ["warn"], "files": ["ok"],
                                "kek": ["warn"], "database": ["warn"]}
    assert "does not exist yet" in finding(report, "database", "warn")["message"]
    assert finding(report, "issuer", "warn")["fix"] == \
        "set TESSERA_ISSUER to the URL clients use (https)"
    assert report["summary"] == {"ok": 2, "warn": 3, "fail": 0}
    assert not (workdir / "data").exists()


def test_a_running_embedded_deployment_is_all_ok(workdir: Path) -> None:
    assert CliRunner().invoke(cli, ["keys", "ls"]).exit_code == 0  # migrates, bootstraps
    before = sorted(p.name for p in (workdir / "data").iterdir())
    result = CliRunner().invoke(cli, ["doctor"], env={"TESSERA_ISSUER": "http://127.0.0.1:8000"})
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "everything checked is fine"
    for check in ("settings", "issuer", "files", "kek", "database", "signing_keys"):
        assert any(line.startswith("ok") and f" {check} " in line
                   for line in result.output.splitlines()), (check, result.output)
    assert "(head)" in result.output
    assert sorted(p.name for p in (workdir / "data").iterdir()) == before


def test_a_kek_that_does_not_unseal_the_keys_fails(workdir: Path) -> None:
    assert CliRunner().invoke(cli, ["keys", "ls"]).exit_code == 0
    code, report = doctor({"TESSERA_KEYS__ENCRYPTION_KEY": Sealer.new_kek_b64()})
    assert code == 1 and report["ok"] is False
    failed = finding(report, "signing_keys", "fail")
    assert failed["message"].startswith("the key-encryption key does not unseal key(s) ")
    assert "TESSERA_KEYS__ENCRYPTION_KEY" in failed["fix"]


def test_no_active_signing_key_fails(workdir: Path) -> None:
    assert CliRunner().invoke(cli, ["keys", "ls"]).exit_code == 0
    import sqlite3

    with sqlite3.connect(workdir / "data" / "tessera.db") as db:
        db.execute("UPDATE signing_keys SET state = 'retiring' WHERE state = 'active'")
    code, report = doctor()
    assert code == 1
    assert finding(report, "signing_keys", "fail")["fix"] == "run `tessera keys rotate`"


def test_issuer_must_be_https_unless_loopback(workdir: Path) -> None:
    code, report = doctor({"TESSERA_ISSUER": "http://id.example.com"})
    assert code == 1
    assert "plain http on a non-loopback host" in finding(report, "issuer", "fail")["message"]
    for loopback in ("http://localhost:8000", "http://127.0.0.2:8000", "http://[::1]:8000"):
        assert statuses(doctor({"TESSERA_ISSUER": loopback})[1])["issuer"] == ["ok"]
    code, report = doctor({"TESSERA_ISSUER": "https://id.example.com"})
    assert code == 0
    assert finding(report, "issuer", "warn")["fix"] == \
        "set TESSERA_SECURITY__COOKIE_SECURE=true"
    code, report = doctor({"TESSERA_ISSUER": "https://id.example.com",
                           "TESSERA_SECURITY__COOKIE_SECURE": "true"})
    assert statuses(report)["issuer"] == ["ok"]


def test_an_issuer_in_tessera_toml_counts_as_set(workdir: Path) -> None:
    (workdir / "tessera.toml").write_text('issuer = "https://id.example.com"\n')
    (workdir / "tessera.toml").chmod(0o600)
    report = doctor({"TESSERA_SECURITY__COOKIE_SECURE": "true"})[1]
    assert statuses(report)["issuer"] == ["ok"]
    assert finding(report, "issuer", "ok")["message"] == "https://id.example.com"


def test_open_permissions_fail_with_the_chmod(workdir: Path) -> None:
    assert CliRunner().invoke(cli, ["keys", "ls"]).exit_code == 0
    data = workdir / "data"
    assert (data.stat().st_mode & 0o777) == 0o700  # created private
    assert ((data / "kek").stat().st_mode & 0o777) == 0o600
    data.chmod(0o755)
    (data / "kek").chmod(0o644)
    (workdir / "tessera.toml").write_text('issuer = "http://127.0.0.1:8000"\n')
    (workdir / "tessera.toml").chmod(0o644)
    code, report = doctor()
    assert code == 1
    fixes = sorted(c["fix"] for c in report["checks"] if c["check"] == "files")
    assert fixes == ["chmod 600 data/kek", "chmod 640 tessera.toml", "chmod 700 data"]


def test_a_misspelt_setting_is_a_warning_with_the_right_name(workdir: Path) -> None:
    code, report = doctor({"TESSERA_KEYS__ENCRYPTON_KEY": "x", "TESSERA_VERIFIER_ISSUER": "y"})
    assert code == 0
    warned = finding(report, "settings", "warn")
    assert warned["message"] == "TESSERA_KEYS__ENCRYPTON_KEY is not a setting and is ignored"
    assert warned["fix"] == "did you mean TESSERA_KEYS__ENCRYPTION_KEY?"
    assert len([c for c in report["checks"] if c["status"] == "warn"
                and c["check"] == "settings"]) == 1


def test_invalid_settings_stop_with_one_finding_each(workdir: Path) -> None:
    code, report = doctor({"TESSERA_TOKENS__ACCESS_TOKEN_TTL": "5",
                           "TESSERA_DATABASE_URL": "mysql://x/y"})
    assert code == 1
    assert statuses(report) == {"settings": ["fail", "fail"]}
    assert {c["message"].split(":")[0] for c in report["checks"]} == {
        "TESSERA_TOKENS__ACCESS_TOKEN_TTL", "TESSERA_DATABASE_URL"}


def test_human_output_names_problems_and_fixes(workdir: Path) -> None:
    result = CliRunner().invoke(cli, ["doctor"], env={"TESSERA_ISSUER": "http://id.example"})
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith("FAIL  issuer") for line in lines)
    assert any(line.strip().startswith("fix: set TESSERA_ISSUER") for line in lines)
    assert lines[-1] == "1 problem(s), 2 warning(s)"


# -- PostgreSQL ---------------------------------------------------------------------

@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A PostgreSQL database of its own (doctor reads the URL: no schema option)."""
    base = require_service(POSTGRES_URL, "postgres")
    name = f"tessera_doctor_{uuid.uuid4().hex[:10]}"

    async def run(sql: str) -> None:
        store = create_store(base)
        try:
            async with store.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(sql))
        finally:
            await store.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.mark.postgres
def test_postgres_not_migrated_then_behind_then_at_head(workdir: Path,
                                                        fresh_database: str) -> None:
    env = {"TESSERA_DATABASE_URL": fresh_database}
    code, report = doctor(env)
    assert code == 1
    assert statuses(report)["kek"] == ["fail"]  # required with PostgreSQL
    failed = finding(report, "database", "fail")
    assert failed["message"].endswith("is reachable but not migrated")
    assert failed["fix"].startswith("run `tessera db upgrade`")

    upgrade_database(fresh_database, revision="0002")
    env["TESSERA_KEYS__ENCRYPTION_KEY"] = Sealer.new_kek_b64()
    code, report = doctor(env)
    assert code == 1
    assert "is at schema 0002, this version needs" in finding(report, "database",
                                                             "fail")["message"]

    upgrade_database(fresh_database)
    code, report = doctor(env)
    assert code == 0, report
    assert statuses(report)["database"] == ["ok"]
    assert statuses(report)["signing_keys"] == ["warn"]  # serve creates them
    assert "files" in statuses(report) and statuses(report)["kek"] == ["ok"]


@pytest.mark.postgres
def test_postgres_unreachable_is_named_with_the_password_masked(workdir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, report = doctor({"TESSERA_DATABASE_URL":
                           f"postgresql://tessera:hunter2@127.0.0.1:{port}/x",
                           "TESSERA_KEYS__ENCRYPTION_KEY": Sealer.new_kek_b64()})
    assert code == 1
    failed = finding(report, "database", "fail")
    assert failed["message"].startswith(
        f"TESSERA_DATABASE_URL: cannot reach the database at "
        f"postgresql://tessera:***@127.0.0.1:{port}/x")
    assert "hunter2" not in json.dumps(report)


# -- Redis --------------------------------------------------------------------------

@pytest.mark.redis
def test_redis_reachable_unreachable_and_refused(workdir: Path) -> None:
    url = require_service(REDIS_URL, "redis")
    code, report = doctor({"TESSERA_BUS__REDIS_URL": url})
    assert code == 0 and statuses(report)["redis"] == ["ok"]
    parts = make_url(url.replace("redis://", "postgresql://", 1))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, report = doctor({"TESSERA_BUS__REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert code == 1
    assert finding(report, "redis", "fail")["message"].startswith("cannot reach Redis at")
    wrong = f"redis://nobody-{uuid.uuid4().hex[:6]}:hunter2@{parts.host}:{parts.port or 6379}/0"
    code, report = doctor({"TESSERA_BUS__REDIS_URL": wrong})
    assert code == 1
    assert finding(report, "redis", "fail")["message"].endswith("refused the credentials")
    assert "hunter2" not in json.dumps(report)
    code, report = doctor({"TESSERA_BUS__REDIS_URL": "http://redis.example"})
    assert code == 1
    assert "unsupported Redis URL scheme" in finding(report, "redis", "fail")["message"]
