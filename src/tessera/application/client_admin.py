"""Client lifecycle: disable, enable, delete, rotate the secret.

    verb            state                         published
    disable         disabled                      client.revoked; its refresh families end
    enable          enabled                       -
    delete          row removed, consents gone    client.revoked; its refresh families end
    rotate_secret   new secret (shown once)       client.revoked (access tokens issued so
                                                  far); refresh families stay, bound to
                                                  the client's authentication

A disabled or deleted client fails authentication and the authorization endpoint at once
in this process and, in others, within the client cache's life (or as soon as the
``client.revoked`` event reaches them); its tokens are inactive everywhere.
"""

from __future__ import annotations

from tessera.application import lifecycle
from tessera.application.admin import AdminContext, AdminError
from tessera.application.transaction import transaction
from tessera.core.clients import Client
from tessera.core.secrets import new_secret, token_hash
from tessera.observability import events

__all__ = ["delete_client", "find_client", "rotate_secret", "set_disabled"]


async def find_client(ctx: AdminContext, client_id: str) -> Client:
    async with ctx.store.unit_of_work(read_only=True) as uow:
        client = await uow.clients.get(client_id)
    if client is None:
        raise AdminError(f"no client {client_id!r}")
    return client


def _ttl(ctx: AdminContext) -> float:
    return float(ctx.token_ttl)


async def set_disabled(ctx: AdminContext, client_id: str, *, disabled: bool,
                       actor: str = "cli") -> int:
    """Returns the refresh families ended (disable) or 0 (enable)."""
    client = await find_client(ctx, client_id)
    ended = 0
    async with transaction(ctx.store, ctx.audit) as tx:
        await tx.uow.clients.set_disabled(client_id, disabled)
        if disabled:
            ended = await lifecycle.revoke_client(tx, client_id, at=ctx.clock.now(),
                                                  reason="client_disabled",
                                                  token_ttl=_ttl(ctx))
        tx.audit(events.CLIENT_DISABLED if disabled else events.CLIENT_ENABLED,
                 client_id=client_id, tenant_id=client.tenant_id, actor=actor, families=ended)
    ctx.clients.forget(client_id)
    return ended


async def delete_client(ctx: AdminContext, client_id: str, *, actor: str = "cli") -> int:
    """Returns the refresh families ended."""
    client = await find_client(ctx, client_id)
    async with transaction(ctx.store, ctx.audit) as tx:
        ended = await lifecycle.revoke_client(tx, client_id, at=ctx.clock.now(),
                                              reason="client_deleted",
                                              token_ttl=_ttl(ctx))
        await tx.uow.consents.delete_for_client(client_id)
        await tx.uow.clients.delete(client_id)
        tx.audit(events.CLIENT_DELETED, client_id=client_id, tenant_id=client.tenant_id,
                 actor=actor, families=ended)
    ctx.clients.forget(client_id)
    return ended


async def rotate_secret(ctx: AdminContext, client_id: str, *, actor: str = "cli") -> str:
    """A new secret (returned once; only its hash is kept); the old one stops working and
    every access token issued to the client so far is revoked."""
    client = await find_client(ctx, client_id)
    if client.public:
        raise AdminError("a public client has no secret to rotate")
    if not client.uses_secret:
        raise AdminError(f"the client authenticates with {client.token_endpoint_auth_method}, "
                         "not a secret: rotate its keys or certificate instead")
    secret = new_secret()
    async with transaction(ctx.store, ctx.audit) as tx:
        await tx.uow.clients.set_secret(client_id, token_hash(secret))
        await lifecycle.revoke_client(tx, client_id, at=ctx.clock.now(),
                                      reason="secret_rotated", token_ttl=_ttl(ctx),
                                      families=False)
        tx.audit(events.CLIENT_SECRET_ROTATED, client_id=client_id, tenant_id=client.tenant_id,
                 actor=actor)
    ctx.clients.forget(client_id)
    return secret
