"""``tessera clients create|ls``."""

from __future__ import annotations

import click

from tessera.cli._common import echo_json, fail, run_with_identity
from tessera.identity import admin
from tessera.identity.compose import Identity

__all__ = ["clients"]


@click.group()
def clients() -> None:
    """OAuth clients."""


@clients.command()
@click.option("--name", required=True)
@click.option("--grant", "grants", multiple=True, required=True,
              help="Grant type; repeat for several.")
@click.option("--public", is_flag=True, help="A public client (no secret; PKCE required).")
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--post-logout-redirect-uri", "post_logout_uris", multiple=True)
@click.option("--scope", default="", help='Allowed scopes, space-separated: "a b".')
@click.option("--audience", "audiences", multiple=True,
              help="Audience (resource) the client may get tokens for; first is default.")
@click.option("--tenant", default=None)
def create(name: str, grants: tuple[str, ...], public: bool, redirect_uris: tuple[str, ...],
           post_logout_uris: tuple[str, ...], scope: str, audiences: tuple[str, ...],
           tenant: str | None) -> None:
    """Register a client; prints JSON with client_id and client_secret (shown once)."""

    async def work(identity: Identity) -> dict[str, object]:
        client, secret = await admin.create_client(
            identity, name=name, grants=grants, public=public, redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_uris, scope=scope, audiences=audiences,
            tenant_id=tenant)
        return {"client_id": client.client_id, "client_secret": secret,
                "grant_types": sorted(client.grant_types), "scope": " ".join(
                    sorted(client.scopes)), "audiences": list(client.audiences),
                "redirect_uris": list(client.redirect_uris), "public": client.public}

    try:
        echo_json(run_with_identity(work))
    except admin.AdminError as exc:
        fail(str(exc))


@clients.command("ls")
def list_clients() -> None:
    """List clients as JSON (no secrets)."""

    async def work(identity: Identity) -> list[dict[str, object]]:
        async with identity.store.unit_of_work(read_only=True) as uow:
            found = await uow.clients.all()
        return [{"client_id": c.client_id, "name": c.name, "public": c.public,
                 "grant_types": sorted(c.grant_types)} for c in found]

    echo_json(run_with_identity(work))
