"""``tessera idps add|ls|show|disable|rm|link`` against a real SQLite file (issue 11,
item 1): ``add`` prints one JSON object with ``redirect_uri``, ``backchannel_logout_uri``
and ``ssf_push_uri``; a bad mapping is refused with its line; the client secret is read
from standard input and stored sealed, never printed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tessera.cli.main import cli
from tests.integration.test_trust_cli import _quick  # noqa: F401 (autouse fixture)

ISSUER = "http://127.0.0.1:8000"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run(data: Path, *args: str, stdin: str = "") -> Result:
    env = {"TESSERA_DATA_DIR": str(data), "TESSERA_ISSUER": ISSUER}
    return CliRunner().invoke(cli, list(args), input=stdin, env=env, catch_exceptions=False)


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def add(data: Path, *extra: str, name: str = "corp",
        issuer: str = "https://login.corp.example") -> Result:
    return run(data, "idps", "add", "--name", name, "--issuer", issuer, "--client-id",
               "tessera-rp", "--client-secret-stdin", *extra, stdin="the-secret-123\n")


def test_add_prints_the_urls_to_register(data: Path) -> None:
    added = ok(add(data))
    idp = added["idp_id"]
    assert added["redirect_uri"] == f"{ISSUER}/federation/{idp}/callback"
    assert added["backchannel_logout_uri"] == f"{ISSUER}/federation/{idp}/backchannel-logout"
    assert added["ssf_push_uri"] == f"{ISSUER}/federation/{idp}/ssf/push"
    assert added["scope"] == "openid email profile" and added["tenant_id"] == "default"
    assert "the-secret-123" not in json.dumps(added)
    with sqlite3.connect(data / "tessera.db") as db:
        [(sealed,)] = db.execute("SELECT sealed_secret FROM identity_providers").fetchall()
    assert "the-secret-123" not in sealed, "the client secret is sealed at rest"
    listed = ok(run(data, "idps", "ls"))
    assert [p["name"] for p in listed] == ["corp"]
    assert ok(run(data, "idps", "show", "corp"))["idp_id"] == idp
    assert ok(run(data, "idps", "disable", "corp"))["disabled"] is True
    assert ok(run(data, "idps", "rm", "corp"))["deleted"] is True
    assert ok(run(data, "idps", "ls")) == []


def test_names_are_unique_per_tenant(data: Path) -> None:
    ok(add(data))
    again = add(data)
    assert again.exit_code == 2 and "already has a provider" in again.stderr
    other = ok(add(data, "--tenant", "acme"))
    assert other["tenant_id"] == "acme"
    assert len(ok(run(data, "idps", "ls"))) == 2
    assert len(ok(run(data, "idps", "ls", "--tenant", "acme"))) == 1


@pytest.mark.parametrize(("mapping", "line", "words"), [
    ("claims:\n  subject: sub\n  emial: email\n", 3, "emial"),
    ("roles:\n  admins: tenant-admin\n  root: platform-admin\n", 3, "cross-tenant"),
    ("roles:\n  eng: wizard\n", 2, "unknown role"),
    ("acr:\n  gold: urn:tessera:acr:platinum\n", 2, "unknown level"),
    ("claims:\n  custom:\n    sub: employee\n", 3, "reserved"),
    ("home_realm_domains: corp.example\n", 1, "list"),
    ("claims: [\n", 2, "YAML"),
])
def test_a_bad_mapping_is_refused_with_its_line(data: Path, tmp_path: Path, mapping: str,
                                                line: int, words: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(mapping)
    result = add(data, "--mapping", str(path))
    assert result.exit_code == 2, result.output
    assert f"line {line}:" in result.stderr, result.stderr
    assert words.lower() in result.stderr.lower(), result.stderr
    assert ok(run(data, "idps", "ls")) == [], "nothing is stored"


def test_a_good_mapping_is_stored(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("claims:\n  department: dept\nroles:\n  helpdesk: support\n"
                    "home_realm_domains: ['@Corp.Example']\n")
    added = ok(add(data, "--mapping", str(path)))
    assert added["mapping"]["roles"] == {"helpdesk": "support"}
    assert added["mapping"]["home_realm_domains"] == ["corp.example"]


@pytest.mark.parametrize(("issuer", "allowed"), [
    ("https://login.corp.example", True),
    ("http://127.0.0.1:9000", True),   # loopback upstream, loopback http issuer
    ("http://login.corp.example", False),
    ("https://login.corp.example?x=1", False),
    ("ftp://login.corp.example", False),
])
def test_issuer_must_be_https_except_loopback(data: Path, issuer: str, allowed: bool) -> None:
    result = add(data, issuer=issuer)
    assert (result.exit_code == 0) is allowed, result.output


def test_ssf_poll_url(data: Path) -> None:
    added = ok(add(data, "--ssf-poll-url", "https://ssf.corp.example/poll"))
    assert added["ssf_poll_url"] == "https://ssf.corp.example/poll"
    plain = add(data, "--ssf-poll-url", "http://ssf.corp.example/poll", name="other")
    assert plain.exit_code == 2 and "https" in plain.stderr


def test_secret_and_scope_are_checked(data: Path) -> None:
    empty = run(data, "idps", "add", "--name", "x", "--issuer", "https://i.example",
                "--client-id", "c", "--client-secret-stdin", stdin="\n")
    assert empty.exit_code == 2 and "secret" in empty.stderr
    no_openid = add(data, "--scope", "email profile")
    assert no_openid.exit_code == 2 and "openid" in no_openid.stderr
    bad_name = add(data, name="Bad Name!")
    assert bad_name.exit_code == 2
    missing = run(data, "idps", "show", "nope")
    assert missing.exit_code == 2 and "no provider" in missing.stderr


def test_an_administrator_links_an_upstream_subject(data: Path) -> None:
    ok(add(data))
    user_id = ok(run(data, "users", "create", "--username", "dana", "--password-stdin",
                     stdin="dana-password-1\n"))["user_id"]
    linked = ok(run(data, "idps", "link", "corp", "--subject", "upstream-dana",
                    "--user-id", user_id))
    assert linked["linked"] is True
    again = ok(run(data, "idps", "link", "corp", "--subject", "upstream-dana",
                   "--user", user_id))
    assert again["linked"] is False
