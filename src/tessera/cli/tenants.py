"""``tessera tenants create|ls|suspend|resume TENANT``: the tenant lifecycle.

The CLI is the platform operator (it holds the database and the KEK), so it may act on
every tenant. Each verb prints one JSON object (``ls``: a list) on standard output.
``suspend`` revokes every token and session of the tenant and refuses new logins and
grants in it until ``resume``; a bar on standard error shows progress for large tenants.
"""

from __future__ import annotations

import click

from tessera.cli._common import identifier, run_json
from tessera.cli._table import progress
from tessera.identity import tenancy
from tessera.identity.compose import Identity

__all__ = ["tenants"]

PROGRESS_FROM = 20


@click.group()
def tenants() -> None:
    """Tenants: register, list, suspend, resume."""


@tenants.command()
@identifier("tenant", metavar="TENANT")
@click.option("--name", default=None, help="A display name (default: the tenant id).")
def create(tenant: str, name: str | None) -> None:
    """Register TENANT."""

    async def work(identity: Identity) -> dict[str, object]:
        return tenancy.tenant_json(await tenancy.create_tenant(identity, tenant, name=name))

    run_json(work)


@tenants.command("ls")
def list_tenants() -> None:
    """Every registered tenant with its status (active or suspended)."""

    async def work(identity: Identity) -> list[dict[str, object]]:
        return [tenancy.tenant_json(t) for t in await tenancy.list_tenants(identity)]

    run_json(work)


@tenants.command()
@identifier("tenant", metavar="TENANT")
@click.option("--reason", default="tenant_suspended", show_default=True)
def suspend(tenant: str, reason: str) -> None:
    """Suspend TENANT: revoke every token and session, refuse logins and grants."""

    async def work(identity: Identity) -> dict[str, object]:
        async with identity.store.unit_of_work(read_only=True) as uow:
            expected = len(await uow.sessions.active_for_tenant(tenant))
        if expected < PROGRESS_FROM:
            revoked = await tenancy.suspend_tenant(identity, tenant, reason=reason)
        else:
            with progress(expected, f"revoking sessions of {tenant}") as advance:
                revoked = await tenancy.suspend_tenant(identity, tenant, reason=reason,
                                                       progress=advance)
        return {"tenant_id": tenant, "status": "suspended", "sessions_revoked": revoked,
                "events": ["tenant.revoked"] + (["session.revoked"] if revoked else [])}

    run_json(work)


@tenants.command()
@identifier("tenant", metavar="TENANT")
def resume(tenant: str) -> None:
    """Let TENANT sign in again (nothing revoked comes back)."""

    async def work(identity: Identity) -> dict[str, object]:
        resumed = await tenancy.resume_tenant(identity, tenant)
        return {"tenant_id": tenant, "status": "active", "resumed": resumed}

    run_json(work)
