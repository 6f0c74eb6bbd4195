"""Every ``tessera`` verb that reads the deployment's settings answers a missing or wrong
setting with one ``error:`` line per problem that names the setting and how to fix it,
exit status 2, and no traceback (issue 16, operator experience)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tessera.cli.main import cli
from tessera.keys import Sealer

# One invocation per verb that reads Settings. A verb added later fails
# test_every_verb_is_covered until it is listed here (or in NOT_SETTINGS, with why).
VERBS: dict[str, tuple[list[str], str]] = {
    "serve": (["serve", "--port", "0"], ""),
    "db upgrade": (["db", "upgrade"], ""),
    "clients create": (["clients", "create", "--name", "x", "--grant", "client_credentials"],
                       ""),
    "clients ls": (["clients", "ls"], ""),
    "users create": (["users", "create", "--username", "u", "--password-stdin"],
                     "a long password\n"),
    "users totp-enrol": (["users", "totp-enrol", "--username", "u"], ""),
    "users ls": (["users", "ls"], ""),
    "users show": (["users", "show", "--username", "u"], ""),
    "users disable": (["users", "disable", "--username", "u"], ""),
    "users enable": (["users", "enable", "--username", "u"], ""),
    "users delete": (["users", "delete", "--username", "u"], ""),
    "users set-password": (["users", "set-password", "--username", "u", "--password-stdin"],
                           "a long password\n"),
    "users grant-role": (["users", "grant-role", "--username", "u", "--role", "support"], ""),
    "users revoke-role": (["users", "revoke-role", "--username", "u", "--role", "support"],
                          ""),
    "clients disable": (["clients", "disable", "c_x"], ""),
    "clients enable": (["clients", "enable", "c_x"], ""),
    "clients delete": (["clients", "delete", "c_x"], ""),
    "clients rotate-secret": (["clients", "rotate-secret", "c_x"], ""),
    "tenants create": (["tenants", "create", "acme"], ""),
    "tenants ls": (["tenants", "ls"], ""),
    "tenants suspend": (["tenants", "suspend", "acme"], ""),
    "tenants resume": (["tenants", "resume", "acme"], ""),
    "tenants set-session-policy": (["tenants", "set-session-policy", "--tenant", "acme",
                                    "--idle-timeout", "30m"], ""),
    "tenants session-policy": (["tenants", "session-policy", "--tenant", "acme"], ""),
    "keys rotate": (["keys", "rotate"], ""),
    "keys ls": (["keys", "ls"], ""),
    "sessions ls": (["sessions", "ls"], ""),
    "sessions show": (["sessions", "show", "sid-1"], ""),
    "sessions bump": (["sessions", "bump", "--sid", "sid-1"], ""),
    "sessions revoke": (["sessions", "revoke", "--sid", "sid-1"], ""),
    "audit tail": (["audit", "tail"], ""),
    "audit trace": (["audit", "trace", "needle"], ""),
    "audit verify": (["audit", "verify"], ""),
    "revoke": (["revoke", "--sid", "sid-1", "--yes"], ""),
    "verifiers ls": (["verifiers", "ls"], ""),
    "clients backchannel-logout": (["clients", "backchannel-logout", "c_x"], ""),
    "signals ls": (["signals", "ls", "--dead"], ""),
    "signals retry": (["signals", "retry", "1"], ""),
    "idps add": (["idps", "add", "--name", "corp", "--issuer", "https://login.example",
                  "--client-id", "rp", "--client-secret-stdin"], "a secret\n"),
    "idps ls": (["idps", "ls"], ""),
    "idps show": (["idps", "show", "corp"], ""),
    "idps disable": (["idps", "disable", "corp"], ""),
    "idps rm": (["idps", "rm", "corp"], ""),
    "idps link": (["idps", "link", "corp", "--subject", "s", "--user-id", "u"], ""),
}
NOT_SETTINGS = {
    "keys generate-kek": "needs no settings: it is how a missing KEK gets fixed",
    "gateway": "reads TESSERA_VERIFIER_*/TESSERA_GATEWAY_* (tests/unit/gateway/test_cli.py)",
    "bff": "reads TESSERA_BFF_* (tests/unit/cli/test_bff_cli.py)",
    "demo": "starts its own embedded deployment with its own settings",
    "doctor": "reports problems instead of failing on the first (test_doctor.py)",
}


def _leaves(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[str]:
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield " ".join(path)


def test_every_verb_is_covered() -> None:
    assert set(_leaves(cli)) == set(VERBS) | set(NOT_SETTINGS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


BROKEN: dict[str, tuple[dict[str, str], str]] = {
    "invalid value": ({"TESSERA_TOKENS__ACCESS_TOKEN_TTL": "5"},
                      "error: TESSERA_TOKENS__ACCESS_TOKEN_TTL: Input should be greater than "
                      "or equal to 30 (set TESSERA_TOKENS__ACCESS_TOKEN_TTL or "
                      "tokens.access_token_ttl in tessera.toml)"),
    "malformed KEK": ({"TESSERA_KEYS__ENCRYPTION_KEY": "too-short"},
                      "error: TESSERA_KEYS__ENCRYPTION_KEY: must be 32 random bytes in "
                      "base64url; generate one with `tessera keys generate-kek`"),
    "PostgreSQL without a KEK": (
        {"TESSERA_DATABASE_URL": "postgresql://tessera:hunter2@127.0.0.1:1/tessera"},
        "error: TESSERA_KEYS__ENCRYPTION_KEY: required with PostgreSQL; generate one with "
        "`tessera keys generate-kek`"),
    "unsupported database": ({"TESSERA_DATABASE_URL": "mysql://db/tessera"},
                             "error: TESSERA_DATABASE_URL: must be a sqlite:///PATH or "
                             "postgresql://USER@HOST/DB URL"),
    "unreachable database": (
        {"TESSERA_DATABASE_URL": "postgresql://tessera:hunter2@127.0.0.1:{port}/tessera",
         "TESSERA_KEYS__ENCRYPTION_KEY": Sealer.new_kek_b64()},
        "error: TESSERA_DATABASE_URL: cannot reach the database at "
        "postgresql://tessera:***@127.0.0.1:{port}/tessera"),
}




@pytest.mark.parametrize("problem", list(BROKEN))
@pytest.mark.parametrize("verb", list(VERBS))
def test_a_broken_setting_is_one_line_naming_it(workdir: Path, verb: str,
                                                problem: str) -> None:
    args, stdin = VERBS[verb]
    env, expected = BROKEN[problem]
    port = str(_free_port())
    env = {name: value.replace("{port}", port) for name, value in env.items()}
    result = CliRunner().invoke(cli, args, env=env, input=stdin)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert lines == [line for line in lines if line.startswith("error: ")], result.output
    if verb == "db upgrade" and problem == "PostgreSQL without a KEK":
        # migrations need no KEK: the (unreachable) database is what is wrong
        expected = "error: TESSERA_DATABASE_URL: cannot reach the database at "
    assert len(lines) == 1 and lines[0].startswith(expected.replace("{port}", port)), lines
    assert "hunter2" not in result.output


def test_every_wrong_setting_gets_its_own_line(workdir: Path) -> None:
    env = {"TESSERA_TOKENS__ACCESS_TOKEN_TTL": "5", "TESSERA_KEYS__ALGORITHM": "HS256",
           "TESSERA_ISSUER": "https://id.example/?x=1"}
    result = CliRunner().invoke(cli, ["keys", "ls"], env=env)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "TESSERA_ISSUER", "TESSERA_KEYS__ALGORITHM", "TESSERA_TOKENS__ACCESS_TOKEN_TTL"]
    assert "hunter2" not in result.output and "HS256" not in result.output


def test_a_broken_settings_file_is_named(workdir: Path) -> None:
    (workdir / "tessera.toml").write_text("issuer = \n")
    result = CliRunner().invoke(cli, ["clients", "ls"])
    assert result.exit_code == 2
    assert result.output.startswith("error: tessera.toml: not valid TOML (")


def test_a_list_setting_that_is_not_json_is_named(workdir: Path) -> None:
    result = CliRunner().invoke(cli, ["clients", "ls"],
                                env={"TESSERA_CONSOLE__DECISION_LOGS": "[alice"})
    assert result.exit_code == 2
    assert result.output.startswith("error: TESSERA_CONSOLE__*: a value is not valid JSON")


def test_an_unusable_data_dir_is_named(workdir: Path) -> None:
    blocker = workdir / "file"
    blocker.write_text("")
    result = CliRunner().invoke(cli, ["keys", "ls"],
                                env={"TESSERA_DATA_DIR": str(blocker / "data")})
    assert result.exit_code == 2
    assert result.output.startswith(f"error: TESSERA_DATA_DIR: cannot use {blocker}")


def test_a_wrong_kek_says_it_does_not_unseal_the_keys(workdir: Path) -> None:
    assert CliRunner().invoke(cli, ["keys", "ls"]).exit_code == 0  # keys sealed, data/kek
    result = CliRunner().invoke(cli, ["keys", "rotate"],
                                env={"TESSERA_KEYS__ENCRYPTION_KEY": Sealer.new_kek_b64()})
    assert result.exit_code == 2
    assert result.output == ("error: TESSERA_KEYS__ENCRYPTION_KEY: it does not unseal the "
                             "stored signing keys; set the key they were sealed with "
                             "(every instance must use the same one)\n")


def test_generate_kek_prints_a_fresh_usable_key(workdir: Path) -> None:
    first = CliRunner().invoke(cli, ["keys", "generate-kek"],
                               env={"TESSERA_TOKENS__ACCESS_TOKEN_TTL": "5"})
    second = CliRunner().invoke(cli, ["keys", "generate-kek"])
    assert first.exit_code == 0 and second.exit_code == 0
    kek = first.output.strip()
    assert kek != second.output.strip()
    assert Sealer.from_b64(kek).open(Sealer.from_b64(kek).seal(b"x", context="k"),
                                     context="k") == b"x"
    assert not (workdir / "data").exists()  # touched nothing
    env = {"TESSERA_KEYS__ENCRYPTION_KEY": kek}
    assert CliRunner().invoke(cli, ["keys", "ls"], env=env).exit_code == 0


def test_serve_fails_before_starting_with_one_line(workdir: Path) -> None:
    """The real process: stderr is the one line, not uvicorn's startup traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(TESSERA_DATA_DIR=str(workdir / "data"),
               TESSERA_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/test")
    done = subprocess.run([sys.executable, "-m", "tessera.cli.main", "serve", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=workdir)
    assert done.returncode == 2
    assert done.stderr.startswith("error: TESSERA_KEYS__ENCRYPTION_KEY: required with "
                                  "PostgreSQL"), done.stderr
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_redis_url_of_another_scheme_is_named(workdir: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "ls"],
                                env={"TESSERA_BUS__REDIS_URL": "http://redis.example"})
    assert result.exit_code == 2
    assert result.output.startswith("error: TESSERA_BUS__REDIS_URL: unsupported Redis URL "
                                    "scheme 'http'")


def test_the_gateway_names_a_wrong_tracing_setting(workdir: Path) -> None:
    policy = workdir / "policy.yaml"
    policy.write_text("routes: []\n")
    env = {"TESSERA_VERIFIER_ISSUER": "https://id.example"}
    result = CliRunner().invoke(cli, ["gateway", "--policy", str(policy), "--port", "0"],
                                env=env)
    assert result.exit_code == 2
    assert result.output == ("error: TESSERA_VERIFIER_*: client_id and client_secret are "
                             "required for the revocation feed and for introspection\n")
    env |= {"TESSERA_VERIFIER_CLIENT_ID": "gw", "TESSERA_VERIFIER_CLIENT_SECRET": "s",
            "TESSERA_TRACING__EXPORTER": "x"}
    result = CliRunner().invoke(cli, ["gateway", "--policy", str(policy), "--port", "0"],
                                env=env)
    assert result.exit_code == 2
    assert result.output == ("error: TESSERA_TRACING__EXPORTER: Input should be 'otlp' or "
                             "'console' (set TESSERA_TRACING__EXPORTER)\n")


def test_an_identifier_is_taken_as_the_argument_or_the_option_once() -> None:
    import click
    from click.testing import CliRunner

    from tessera.cli._common import identifier

    @click.command()
    @identifier("sid", metavar="SID")
    def show(sid: str) -> None:
        click.echo(f"sid={sid}")

    runner = CliRunner()
    assert runner.invoke(show, ["s1"]).output == "sid=s1\n"
    assert runner.invoke(show, ["--sid", "s1"]).output == "sid=s1\n"
    assert runner.invoke(show, ["s1", "--sid", "s1"]).output == "sid=s1\n"
    both = runner.invoke(show, ["s1", "--sid", "s2"])
    assert both.exit_code == 2 and "give SID once" in both.output
    none = runner.invoke(show, [])
    assert none.exit_code == 2 and "missing SID" in none.output
