"""``tessera tenants create|ls|suspend|resume TENANT``: the tenant lifecycle;
``tenants set-session-policy|session-policy TENANT``: its login session bounds. Every
verb takes the tenant id as its argument or as ``--tenant`` (``cli/_common.identifier``).

The CLI is the platform operator (it holds the database and the KEK), so it may act on
every tenant. Each verb prints one JSON object (``ls``: a list) on standard output.
``suspend`` revokes every token and session of the tenant and refuses new logins and
grants in it until ``resume``; a bar on standard error shows progress for large tenants.
"""

from __future__ import annotations

import click

from tessera.application import tenancy
from tessera.cli._common import run_json, tenant_identifier
from tessera.cli._table import bulk_progress
from tessera.identity import session_policy
from tessera.identity.compose import Identity

__all__ = ["tenants"]


@click.group()
def tenants() -> None:
    """Tenants: register, list, suspend, resume."""


@tenants.command()
@tenant_identifier()
@click.option("--name", default=None, help="A display name (default: the tenant id).")
def create(tenant_id: str, name: str | None) -> None:
    """Register TENANT."""

    async def work(identity: Identity) -> dict[str, object]:
        return tenancy.tenant_json(await tenancy.create_tenant(identity.admin, tenant_id,
                                                               name=name))

    run_json(work)


@tenants.command("ls")
def list_tenants() -> None:
    """Every registered tenant with its status (active or suspended)."""

    async def work(identity: Identity) -> list[dict[str, object]]:
        return [tenancy.tenant_json(t) for t in await tenancy.list_tenants(identity.admin)]

    run_json(work)


@tenants.command()
@tenant_identifier()
@click.option("--reason", default="tenant_suspended", show_default=True)
def suspend(tenant_id: str, reason: str) -> None:
    """Suspend TENANT: revoke every token and session, refuse logins and grants."""

    async def work(identity: Identity) -> dict[str, object]:
        async with identity.store.unit_of_work(read_only=True) as uow:
            expected = len(await uow.sessions.active_for_tenant(tenant_id))
        with bulk_progress(expected, f"revoking sessions of {tenant_id}") as advance:
            revoked = await tenancy.suspend_tenant(identity.admin, tenant_id, reason=reason,
                                                   progress=advance)
        return {"tenant_id": tenant_id, "status": "suspended", "sessions_revoked": revoked,
                "events": ["tenant.revoked"] + (["session.revoked"] if revoked else [])}

    run_json(work)


@tenants.command()
@tenant_identifier()
def resume(tenant_id: str) -> None:
    """Let TENANT sign in again (nothing revoked comes back)."""

    async def work(identity: Identity) -> dict[str, object]:
        resumed = await tenancy.resume_tenant(identity.admin, tenant_id)
        return {"tenant_id": tenant_id, "status": "active", "resumed": resumed}

    run_json(work)


@tenants.command("set-session-policy")
@tenant_identifier(help="The tenant whose sessions are bounded (same as TENANT).")
@click.option("--idle-timeout", default=None, metavar="DURATION",
              help="End a session unused this long (90s, 30m, 12h, 7d; 0: never; "
                   "'default': the global setting).")
@click.option("--absolute-timeout", default=None, metavar="DURATION",
              help="End a session this long after sign-in, however much it is used.")
@click.option("--max-sessions", default=None, metavar="N",
              help="Concurrent sessions per user (0: no limit).")
@click.option("--on-limit", default=None,
              type=click.Choice(["refuse", "end_oldest", "default"]),
              help="At the limit: refuse the new sign-in, or end the user's oldest session "
                   "(revoked through the outbox like any revocation).")
def set_session_policy(tenant_id: str, idle_timeout: str | None, absolute_timeout: str | None,
                       max_sessions: str | None, on_limit: str | None) -> None:
    """Bound the login sessions of TENANT; options left out keep their value. Prints the
    tenant's policy and the effective one (with the global defaults filled in), seconds."""
    async def work(identity: Identity) -> dict[str, object]:
        return await session_policy.set_session_policy(
            identity, tenant_id, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout,
            max_sessions=max_sessions, on_limit=on_limit)

    run_json(work)


@tenants.command("session-policy")
@tenant_identifier()
def show_session_policy(tenant_id: str) -> None:
    """The session bounds of TENANT: its own and the effective ones (seconds)."""
    async def work(identity: Identity) -> dict[str, object]:
        return await session_policy.show_session_policy(identity, tenant_id)

    run_json(work)
