"""Tenant lifecycle: register, list, suspend, resume.

Suspending a tenant is a tenant-wide revocation (``admin.revoke_tenant``: one
``tenant.revoked`` event, then every session in batches) and, until it is resumed, a
refusal of every new login and grant in it (``application.standing``): the password form,
the authorization endpoint, every grant at the token endpoint, client authentication,
introspection of its tokens. Resuming lets new logins in; nothing revoked comes back.
"""

from __future__ import annotations

from collections.abc import Callable

from tessera.application import admin
from tessera.application.admin import AdminContext
from tessera.application.transaction import transaction
from tessera.core.tenants import Tenant
from tessera.observability import events

__all__ = ["create_tenant", "list_tenants", "resume_tenant", "suspend_tenant",
           "tenant_json"]


def tenant_json(tenant: Tenant) -> dict[str, object]:
    return {"tenant_id": tenant.tenant_id, "name": tenant.name,
            "status": "active" if tenant.active else "suspended",
            "created_at": tenant.created_at, "suspended_at": tenant.suspended_at}


async def create_tenant(ctx: AdminContext, tenant_id: str, *, name: str | None = None,
                        actor: str = "cli") -> Tenant:
    async with transaction(ctx.store, ctx.audit) as tx:
        if not await admin.register_tenant(tx, tenant_id, at=ctx.clock.now(),
                                           name=name, actor=actor):
            raise admin.AdminError(f"tenant {tenant_id!r} exists already")
        tenant = await tx.uow.tenants.get(tenant_id)
    assert tenant is not None
    return tenant


async def list_tenants(ctx: AdminContext) -> list[Tenant]:
    async with ctx.store.unit_of_work(read_only=True) as uow:
        return await uow.tenants.all()


async def _get(ctx: AdminContext, tenant_id: str) -> Tenant:
    async with ctx.store.unit_of_work(read_only=True) as uow:
        tenant = await uow.tenants.get(tenant_id)
    if tenant is None:
        raise admin.AdminError(f"no tenant {tenant_id!r}")
    return tenant


async def suspend_tenant(ctx: AdminContext, tenant_id: str, *, actor: str = "cli",
                         reason: str = "tenant_suspended",
                         progress: Callable[[int], None] | None = None) -> int:
    """Mark the tenant suspended (new logins and grants are refused from this commit on),
    then revoke every token and session of it. Returns the sessions revoked. Running it
    again on a suspended tenant revokes whatever is left (an interrupted run)."""
    await _get(ctx, tenant_id)
    async with transaction(ctx.store, ctx.audit) as tx:
        if await tx.uow.tenants.set_suspended(tenant_id, ctx.clock.now()):
            tx.audit(events.TENANT_SUSPENDED, tenant_id=tenant_id, actor=actor, reason=reason)
    ctx.tenants.forget(tenant_id)
    return await admin.revoke_tenant(ctx, tenant_id, reason=reason, actor=actor,
                                     progress=progress)


async def resume_tenant(ctx: AdminContext, tenant_id: str, *, actor: str = "cli") -> bool:
    """Allow new logins and grants again; False if it was not suspended."""
    await _get(ctx, tenant_id)
    async with transaction(ctx.store, ctx.audit) as tx:
        resumed = await tx.uow.tenants.set_suspended(tenant_id, None)
        if resumed:
            tx.audit(events.TENANT_RESUMED, tenant_id=tenant_id, actor=actor)
    ctx.tenants.forget(tenant_id)
    return resumed
