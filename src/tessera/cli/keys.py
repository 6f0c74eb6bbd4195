"""``tessera keys rotate|ls|generate-kek``."""

from __future__ import annotations

import sys

import click

from tessera.cli._common import echo_json, run_with_identity
from tessera.identity.compose import Identity
from tessera.keys import Sealer

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """Signing keys."""


@keys.command()
@click.option("--alg", type=click.Choice(["RS256", "ES256", "EdDSA"]), default=None,
              help="Rotate only this algorithm's keys (default: every algorithm in use).")
def rotate(alg: str | None) -> None:
    """next → active → retiring → retired, and a fresh next key, for each algorithm the
    ring signs with (access tokens: ``keys.algorithm``, ID tokens:
    ``keys.id_token_algorithm``). Running services pick the new active keys up within
    ``keys.reload_seconds``; verifiers already know them from JWKS."""
    echo_json(run_with_identity(
        lambda identity: identity.key_manager.rotate(actor="cli", alg=alg)))


@keys.command("ls")
def list_keys() -> None:
    """Key ids, algorithms and states."""

    async def work(identity: Identity) -> list[dict[str, object]]:
        async with identity.store.unit_of_work(read_only=True) as uow:
            rows = await uow.keys.all()
        return [{"kid": r.kid, "alg": r.alg, "state": r.state, "changed_at": r.changed_at}
                for r in rows]

    echo_json(run_with_identity(work))


@keys.command("generate-kek")
def generate_kek() -> None:
    """Print a new key-encryption key (32 random bytes, base64url) for
    TESSERA_KEYS__ENCRYPTION_KEY. Touches no database and no file. Keep it secret and give
    every instance the same one: the signing keys sealed under it cannot be opened
    without it."""
    click.echo(Sealer.new_kek_b64())
    if sys.stdout.isatty():
        click.echo("set it as TESSERA_KEYS__ENCRYPTION_KEY (e.g. in a Kubernetes Secret); "
                   "it is shown once", err=True)
