"""``tessera idps add|ls|show|disable|rm|link``: upstream OpenID Connect providers per
tenant (docs/federation.md).

``add`` reads the client secret from standard input (``--client-secret-stdin``), checks
the mapping file (a wrong field is refused with its line) and prints one JSON object
with ``redirect_uri`` (register it at the provider), ``backchannel_logout_uri`` and
``ssf_push_uri`` (where the provider sends logout tokens and security events).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from tessera.cli._common import run_json
from tessera.core.users import DEFAULT_TENANT
from tessera.identity.compose import Identity
from tessera.identity.federation import admin

__all__ = ["idps"]

_TENANT = click.option("--tenant", default=DEFAULT_TENANT, show_default=True,
                       help="The tenant the provider signs users into.")


@click.group()
def idps() -> None:
    """Upstream identity providers: add, ls, show, disable, rm, link."""


@idps.command()
@click.option("--name", required=True, help="Short name (a-z, 0-9, . _ -), unique per tenant.")
@click.option("--issuer", required=True, help="The provider's issuer URL (https).")
@click.option("--client-id", required=True, help="Tessera's client id at the provider.")
@click.option("--client-secret-stdin", is_flag=True, required=True,
              help="Read the client secret from standard input (never an argument).")
@_TENANT
@click.option("--scope", default=admin.DEFAULT_SCOPE, show_default=True)
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, dir_okay=False,
                                                           path_type=Path),
              default=None, help="Claim mapping (YAML); default: the standard claims.")
@click.option("--ssf-poll-url", default=None, metavar="URL",
              help="Poll this Shared Signals transmitter endpoint (RFC 8936) for CAEP "
                   "events, instead of (or besides) push delivery to ssf_push_uri.")
def add(name: str, issuer: str, client_id: str, client_secret_stdin: bool, tenant: str,
        scope: str, mapping_file: Path | None, ssf_poll_url: str | None) -> None:
    """Register an upstream provider."""
    secret = sys.stdin.readline().strip() if client_secret_stdin else ""
    text = mapping_file.read_text(encoding="utf-8") if mapping_file is not None else None

    async def work(identity: Identity) -> dict[str, Any]:
        provider = await admin.add_provider(
            identity, name=name, issuer=issuer, client_id=client_id, client_secret=secret,
            tenant_id=tenant, scope=scope, mapping_text=text, ssf_poll_url=ssf_poll_url)
        return admin.provider_json(identity, provider)

    run_json(work)


@idps.command("ls")
@click.option("--tenant", default=None, help="Only this tenant's providers.")
def list_idps(tenant: str | None) -> None:
    """Every provider (of a tenant)."""

    async def work(identity: Identity) -> list[dict[str, Any]]:
        return [admin.provider_json(identity, p)
                for p in await admin.list_providers(identity, tenant)]

    run_json(work)


@idps.command()
@click.argument("name")
@_TENANT
def show(name: str, tenant: str) -> None:
    """One provider with its URLs."""

    async def work(identity: Identity) -> dict[str, Any]:
        return admin.provider_json(identity, await admin.get_provider(identity, name, tenant))

    run_json(work)


@idps.command()
@click.argument("name")
@_TENANT
def disable(name: str, tenant: str) -> None:
    """Refuse new logins through NAME (its sessions stay until revoked)."""

    async def work(identity: Identity) -> dict[str, Any]:
        return admin.provider_json(identity,
                                   await admin.disable_provider(identity, name, tenant))

    run_json(work)


@idps.command()
@click.argument("name")
@_TENANT
def rm(name: str, tenant: str) -> None:
    """Remove NAME and its links (users and sessions stay)."""

    async def work(identity: Identity) -> dict[str, Any]:
        await admin.delete_provider(identity, name, tenant)
        return {"name": name, "tenant_id": tenant, "deleted": True}

    run_json(work)


@idps.command()
@click.argument("name")
@_TENANT
@click.option("--subject", required=True, help="The user's `sub` at the provider.")
@click.option("--user-id", "--user", "user_id", required=True,
              help="The local user id to sign in as.")
def link(name: str, tenant: str, subject: str, user_id: str) -> None:
    """Link an upstream subject to an existing user (an administrator's link)."""

    async def work(identity: Identity) -> dict[str, Any]:
        linked = await admin.link_user(identity, name, tenant, subject=subject,
                                       user_id=user_id)
        return {"name": name, "tenant_id": tenant, "subject": subject, "user_id": user_id,
                "linked": linked}

    run_json(work)
