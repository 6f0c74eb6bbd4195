"""``tessera clients create|ls|disable|enable|delete|rotate-secret``.

A client is named by its id, as an argument or ``--client-id``. Every verb prints JSON;
disable, delete and rotate-secret publish a client-wide revocation through the outbox
(see ``identity.client_admin``).
"""

from __future__ import annotations

import click

from tessera.cli._common import echo_json, fail, identifier, run_json, run_with_identity
from tessera.identity import admin, client_admin
from tessera.identity.compose import Identity
from tessera.protocol.standing import client_tenant

__all__ = ["clients"]


@click.group()
def clients() -> None:
    """OAuth clients."""


@clients.command()
@click.option("--name", required=True)
@click.option("--grant", "grants", multiple=True, required=True,
              help="Grant type; repeat for several. Aliases: device_code "
                   "(urn:ietf:params:oauth:grant-type:device_code), token_exchange.")
@click.option("--public", is_flag=True, help="A public client (no secret; PKCE required).")
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--post-logout-redirect-uri", "post_logout_uris", multiple=True)
@click.option("--scope", default="", help='Allowed scopes, space-separated: "a b".')
@click.option("--audience", "audiences", multiple=True,
              help="Audience (resource) the client may get tokens for; first is default.")
@click.option("--tenant", default=None)
@click.option("--third-party", is_flag=True,
              help="Not run by the operator: users are asked to consent (once per scope "
                   "set) before it gets a code.")
@click.option("--subject-audience", "subject_audiences", multiple=True, metavar="AUD",
              help="Token exchange trust: the client may exchange subject tokens addressed "
                   "to AUD (the resource it fronts); repeat for several.")
@click.option("--backchannel-logout-uri", default=None, metavar="URI",
              help="OIDC Back-Channel Logout: where logout tokens are posted (https).")
@click.option("--backchannel-logout-session-required", is_flag=True,
              help="The client needs sid in logout tokens (it is always sent when known).")
def create(name: str, grants: tuple[str, ...], public: bool, redirect_uris: tuple[str, ...],
           post_logout_uris: tuple[str, ...], scope: str, audiences: tuple[str, ...],
           tenant: str | None, third_party: bool, subject_audiences: tuple[str, ...],
           backchannel_logout_uri: str | None = None,
           backchannel_logout_session_required: bool = False) -> None:
    """Register a client; prints JSON with client_id and client_secret (shown once)."""

    async def work(identity: Identity) -> dict[str, object]:
        client, secret = await admin.create_client(
            identity, name=name, grants=grants, public=public, redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_uris, scope=scope, audiences=audiences,
            tenant_id=tenant, third_party=third_party, subject_audiences=subject_audiences,
            backchannel_logout_uri=backchannel_logout_uri,
            backchannel_logout_session_required=backchannel_logout_session_required)
        return {"client_id": client.client_id, "client_secret": secret,
                "grant_types": sorted(client.grant_types), "scope": " ".join(
                    sorted(client.scopes)), "audiences": list(client.audiences),
                "redirect_uris": list(client.redirect_uris), "public": client.public,
                "tenant": client_tenant(client), "third_party": client.third_party,
                "subject_audiences": list(client.subject_audiences),
                "backchannel_logout_uri": backchannel_logout_uri,
                "backchannel_logout_session_required": backchannel_logout_session_required}

    try:
        echo_json(run_with_identity(work))
    except admin.AdminError as exc:
        fail(str(exc))


@clients.command("backchannel-logout")
@click.argument("client_id")
@click.option("--backchannel-logout-uri", default=None, metavar="URI",
              help="Where logout tokens are posted; omit to remove the registration.")
@click.option("--backchannel-logout-session-required", is_flag=True)
def backchannel_logout(client_id: str, backchannel_logout_uri: str | None,
                       backchannel_logout_session_required: bool) -> None:
    """Set or remove an existing client's back-channel logout URI."""

    async def work(identity: Identity) -> dict[str, object]:
        await admin.set_backchannel_logout(identity, client_id, backchannel_logout_uri,
                                           backchannel_logout_session_required, actor="cli")
        return {"client_id": client_id, "backchannel_logout_uri": backchannel_logout_uri,
                "backchannel_logout_session_required": backchannel_logout_session_required}

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
                 "grant_types": sorted(c.grant_types), "tenant": client_tenant(c),
                 "disabled": c.disabled, "third_party": c.third_party} for c in found]

    echo_json(run_with_identity(work))


def _verb(verb: str, help_text: str) -> None:
    @clients.command(verb, help=help_text)
    @identifier("client_id", metavar="CLIENT_ID")
    def command(client_id: str) -> None:

        async def work(identity: Identity) -> dict[str, object]:
            if verb == "rotate-secret":
                secret = await client_admin.rotate_secret(identity, client_id)
                return {"client_id": client_id, "client_secret": secret,
                        "events": ["client.revoked"]}
            if verb == "delete":
                ended = await client_admin.delete_client(identity, client_id)
            else:
                ended = await client_admin.set_disabled(identity, client_id,
                                                        disabled=verb == "disable")
            return {"client_id": client_id,
                    "status": {"disable": "disabled", "enable": "active",
                               "delete": "deleted"}[verb],
                    "families_revoked": ended,
                    "events": [] if verb == "enable" else ["client.revoked"]}

        run_json(work)


_verb("disable", "Disable a client: it can no longer authenticate or get codes, its tokens "
                 "are refused everywhere and its refresh tokens end.")
_verb("enable", "Enable a disabled client (nothing revoked comes back).")
_verb("delete", "Delete a client: as disable, and it is gone for good.")
_verb("rotate-secret", "Replace a confidential client's secret (printed once); the old one "
                       "stops working and tokens issued so far are refused.")
