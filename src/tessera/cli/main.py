"""Entry point: ``tessera <noun> <verb>``."""

from __future__ import annotations

import logging

import click

from tessera.cli import (
    audit,
    bff,
    clients,
    db,
    demo,
    doctor,
    gateway,
    idps,
    keys,
    revoke,
    serve,
    sessions,
    signals,
    tenants,
    users,
    verifiers,
)
from tessera.cli._errors import OperatorErrors

__all__ = ["cli", "main"]


@click.group(cls=OperatorErrors)
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO (audit lines included).")
def cli(verbose: bool) -> None:
    """Tessera: session lifecycle for microservices."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(message)s")


cli.add_command(serve.serve)
cli.add_command(db.db)
cli.add_command(clients.clients)
cli.add_command(users.users)
cli.add_command(keys.keys)
cli.add_command(sessions.sessions)
cli.add_command(gateway.gateway)
cli.add_command(audit.audit)
cli.add_command(demo.demo)
cli.add_command(revoke.revoke)
cli.add_command(tenants.tenants)
cli.add_command(doctor.doctor)
cli.add_command(verifiers.verifiers)
cli.add_command(signals.signals)
cli.add_command(idps.idps)
cli.add_command(bff.bff)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
