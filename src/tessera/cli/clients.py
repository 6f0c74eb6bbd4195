"""``tessera clients create|ls|disable|enable|delete|rotate-secret``.

A client is named by its id, as an argument or ``--client-id``. Every verb prints JSON;
disable, delete and rotate-secret publish a client-wide revocation through the outbox
(see ``application.client_admin``).
"""

from __future__ import annotations

import click

from tessera.application import admin, client_admin
from tessera.application.client_keys import AUTH_METHOD_CHOICES, ClientKeys
from tessera.application.standing import client_tenant
from tessera.cli._common import echo_json, fail, identifier, run_json, run_with_identity
from tessera.identity.compose import Identity

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
@click.option("--access-token-format", type=click.Choice(["jwt", "reference"]),
              default="jwt", show_default=True,
              help="reference: opaque access tokens, valid only through introspection.")
@click.option("--auth-method", type=click.Choice(list(AUTH_METHOD_CHOICES)), default=None,
              help="Token endpoint authentication (default: a client secret, or none for "
                   "--public). private_key_jwt and workload_identity need no secret.")
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="private_key_jwt / self_signed_tls_client_auth: the client's public "
                   "keys, a JWK Set file.")
@click.option("--jwks-uri", default=None,
              help="private_key_jwt: where the client publishes its JWK Set (https).")
@click.option("--tls-subject-dn", default=None,
              help="tls_client_auth (RFC 8705): the subject DN of the client's certificate, "
                   "e.g. 'CN=orders,O=Example'.")
@click.option("--workload-issuer", default=None,
              help="workload_identity: the iss of the workload's JWT-SVID / service-account "
                   "token.")
@click.option("--workload-subject", default=None,
              help="workload_identity: its sub, spiffe://… or "
                   "system:serviceaccount:<ns>:<name>.")
@click.option("--workload-jwks-file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="workload_identity: trust bundle / issuer keys (JWK Set).")
@click.option("--workload-jwks-uri", default=None,
              help="workload_identity: the issuer's JWKS URL (https).")
@click.option("--backchannel-logout-uri", default=None, metavar="URI",
              help="OIDC Back-Channel Logout: where logout tokens are posted (https).")
@click.option("--backchannel-logout-session-required", is_flag=True,
              help="The client needs sid in logout tokens (it is always sent when known).")
def create(name: str, grants: tuple[str, ...], public: bool, redirect_uris: tuple[str, ...],
           post_logout_uris: tuple[str, ...], scope: str, audiences: tuple[str, ...],
           tenant: str | None, third_party: bool, subject_audiences: tuple[str, ...],
           access_token_format: str, auth_method: str | None, jwks_file: str | None,
           jwks_uri: str | None, tls_subject_dn: str | None,
           workload_issuer: str | None, workload_subject: str | None,
           workload_jwks_file: str | None, workload_jwks_uri: str | None,
           backchannel_logout_uri: str | None = None,
           backchannel_logout_session_required: bool = False) -> None:
    """Register a client; prints JSON with client_id and client_secret (shown once)."""
    keys = ClientKeys(
        auth_method=auth_method, access_token_format=access_token_format,
        jwks=_read(jwks_file), jwks_uri=jwks_uri, workload_issuer=workload_issuer,
        workload_subject=workload_subject, workload_jwks=_read(workload_jwks_file),
        workload_jwks_uri=workload_jwks_uri, tls_subject_dn=tls_subject_dn)

    async def work(identity: Identity) -> dict[str, object]:
        client, secret = await admin.create_client(
            identity.admin, name=name, grants=grants, public=public, redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout_uris, scope=scope, audiences=audiences,
            tenant_id=tenant, third_party=third_party, subject_audiences=subject_audiences,
            keys=keys, backchannel_logout_uri=backchannel_logout_uri,
            backchannel_logout_session_required=backchannel_logout_session_required)
        return {"client_id": client.client_id, "client_secret": secret,
                "grant_types": sorted(client.grant_types), "scope": " ".join(
                    sorted(client.scopes)), "audiences": list(client.audiences),
                "redirect_uris": list(client.redirect_uris), "public": client.public,
                "tenant_id": client_tenant(client), "third_party": client.third_party,
                "subject_audiences": list(client.subject_audiences),
                "token_endpoint_auth_method": client.token_endpoint_auth_method,
                "access_token_format": client.access_token_format,
                "backchannel_logout_uri": backchannel_logout_uri,
                "backchannel_logout_session_required": backchannel_logout_session_required}

    try:
        echo_json(run_with_identity(work))
    except admin.AdminError as exc:
        fail(str(exc))


@clients.command("backchannel-logout")
@identifier("client_id", metavar="CLIENT_ID")
@click.option("--backchannel-logout-uri", default=None, metavar="URI",
              help="Where logout tokens are posted; omit to remove the registration.")
@click.option("--backchannel-logout-session-required", is_flag=True)
def backchannel_logout(client_id: str, backchannel_logout_uri: str | None,
                       backchannel_logout_session_required: bool) -> None:
    """Set or remove an existing client's back-channel logout URI."""

    async def work(identity: Identity) -> dict[str, object]:
        await admin.set_backchannel_logout(identity.admin, client_id, backchannel_logout_uri,
                                           backchannel_logout_session_required,
                                           actor="cli")
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
                 "grant_types": sorted(c.grant_types), "tenant_id": client_tenant(c),
                 "disabled": c.disabled, "third_party": c.third_party,
                 "token_endpoint_auth_method": c.token_endpoint_auth_method,
                 "access_token_format": c.access_token_format} for c in found]

    echo_json(run_with_identity(work))


def _read(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return file.read(256 * 1024)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")
        raise  # unreachable: fail exits


def _verb(verb: str, help_text: str) -> None:
    @clients.command(verb, help=help_text)
    @identifier("client_id", metavar="CLIENT_ID")
    def command(client_id: str) -> None:

        async def work(identity: Identity) -> dict[str, object]:
            if verb == "rotate-secret":
                secret = await client_admin.rotate_secret(identity.admin, client_id)
                return {"client_id": client_id, "client_secret": secret,
                        "events": ["client.revoked"]}
            if verb == "delete":
                ended = await client_admin.delete_client(identity.admin, client_id)
            else:
                ended = await client_admin.set_disabled(identity.admin, client_id,
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
