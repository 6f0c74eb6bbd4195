"""``cli/_common.identifier`` and ``cli/_table.bulk_progress``: one way to name a thing on
the command line, one progress bar for bulk commands."""

from __future__ import annotations

import io

import click
import pytest
from click.testing import CliRunner

from tessera.cli._common import identifier, tenant_identifier
from tessera.cli._table import bulk_progress


@click.command()
@identifier("sid", metavar="SID")
def show_session(sid: str) -> None:
    click.echo(f"sid={sid}")


@click.command()
@identifier("sid", metavar="SID", required=False)
@click.option("--user-id", default=None)
def bump(sid: str | None, user_id: str | None) -> None:
    click.echo(f"sid={sid} user_id={user_id}")


@click.command()
@tenant_identifier()
def suspend(tenant_id: str) -> None:
    click.echo(f"tenant_id={tenant_id}")


@click.command()
@identifier("family_id", metavar="FAMILY_ID", aliases=("--family",))
def revoke_family(family_id: str) -> None:
    click.echo(f"family_id={family_id}")


def run(command: click.Command, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(command, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("args", [("s-1",), ("--sid", "s-1"), ("s-1", "--sid", "s-1")])
def test_an_identifier_is_the_argument_or_the_option(args: tuple[str, ...]) -> None:
    assert run(show_session, *args) == (0, "sid=s-1\n")


def test_an_identifier_given_twice_differently_or_not_at_all_is_refused() -> None:
    code, out = run(show_session, "s-1", "--sid", "s-2")
    assert code == 2 and "give SID once (SID or --sid)" in out
    code, out = run(show_session)
    assert code == 2 and "missing SID (give it as the argument or as --sid)" in out


def test_an_optional_identifier_leaves_room_for_another_target() -> None:
    assert run(bump, "--user-id", "u-1") == (0, "sid=None user_id=u-1\n")
    assert run(bump, "s-1") == (0, "sid=s-1 user_id=None\n")


def test_the_tenant_is_received_as_tenant_id_and_flagged_as_tenant() -> None:
    assert run(suspend, "acme") == (0, "tenant_id=acme\n")
    assert run(suspend, "--tenant", "acme") == (0, "tenant_id=acme\n")
    code, out = run(suspend, "--tenant-id", "acme")
    assert code == 2 and "No such option" in out


def test_an_older_spelling_stays_an_alias() -> None:
    assert run(revoke_family, "--family", "f-1") == (0, "family_id=f-1\n")
    assert run(revoke_family, "--family-id", "f-1") == (0, "family_id=f-1\n")


def test_help_shows_both_ways() -> None:
    _, out = run(show_session, "--help")
    assert "[SID]" in out and "--sid SID" in out


def test_bulk_progress_shows_a_bar_on_stderr_only_for_many_items(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with bulk_progress(3, "few", at_least=20) as advance:
        assert advance is None
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    with bulk_progress(40, "revoking sessions of acme", at_least=20) as advance:
        assert advance is not None
        advance(25)
        advance(15)
    assert "revoking sessions of acme" in err.getvalue() and "40/40" in err.getvalue()


def _commands(group: click.Group, path: tuple[str, ...] = ()
              ) -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append((" ".join((*path, name)), command))
    return found


VOCABULARY_FLAGS = {"--session": "--sid", "--family": "--family-id", "--user": "--user-id",
                    "--client": "--client-id"}
IDENTIFIERS = {"sid", "user_id", "client_id", "tenant", "tenant_id", "family_id"}


def test_every_command_names_identifiers_the_same_way() -> None:
    """An identifier flag has its vocabulary spelling (older ones are aliases only), and
    an identifier taken as an argument can also be given as its option (identifier())."""
    from tessera.cli.main import cli

    commands = _commands(cli)
    assert len(commands) > 40
    for path, command in commands:
        for param in command.params:
            if isinstance(param, click.Option):
                for old, new in VOCABULARY_FLAGS.items():
                    assert old not in param.opts or new in param.opts, (path, param.opts)
            elif isinstance(param, click.Argument):
                assert param.name not in IDENTIFIERS, (
                    f"tessera {path}: {param.name} only as an argument; use identifier()")
