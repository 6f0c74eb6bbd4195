"""Per-tenant session bounds as the operator sets them (``tessera tenants
set-session-policy`` / ``session-policy``): idle and absolute timeouts, the per-user limit
on concurrent sessions and what happens at it. Enforcement: ``identity.login.bounds``.

A field left out keeps its current value; ``default`` clears it back to the global default
(``settings.sessions``); ``0`` is an explicit "no bound" for this tenant. A change applies
from the next use of each session's cookie and the next sign-in (nothing is revoked by
setting it).
"""

from __future__ import annotations

from dataclasses import replace

from tessera.application.admin import AdminError
from tessera.application.transaction import transaction
from tessera.core.session_bounds import ON_LIMIT, SessionPolicy, parse_duration
from tessera.identity.compose import Identity
from tessera.observability import events

__all__ = ["DEFAULT", "policy_json", "set_session_policy", "show_session_policy"]

DEFAULT = "default"


def _duration(name: str, text: str | None, current: float | None) -> float | None:
    if text is None:
        return current
    if text.strip().lower() == DEFAULT:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise AdminError(f"--{name}: {exc}") from None


def _count(text: str | None, current: int | None) -> int | None:
    if text is None:
        return current
    if text.strip().lower() == DEFAULT:
        return None
    if not text.strip().isdigit() or int(text) > 10_000:
        raise AdminError("--max-sessions: a whole number from 0 (no limit) to 10000")
    return int(text)


def policy_json(own: SessionPolicy, effective: SessionPolicy) -> dict[str, object]:
    def fields(policy: SessionPolicy) -> dict[str, object]:
        return {"idle_timeout": policy.idle_timeout,
                "absolute_timeout": policy.absolute_timeout,
                "max_sessions": policy.max_sessions, "on_limit": policy.on_limit}

    return {"tenant_id": own.tenant_id, **fields(own), "effective": fields(effective),
            "updated_at": own.updated_at or None}


async def _tenant_exists(identity: Identity, tenant_id: str) -> None:
    async with identity.store.unit_of_work(read_only=True) as uow:
        if await uow.tenants.get(tenant_id) is None:
            raise AdminError(f"no tenant {tenant_id!r}")


async def show_session_policy(identity: Identity, tenant_id: str) -> dict[str, object]:
    await _tenant_exists(identity, tenant_id)
    bounds = identity.login.bounds
    assert bounds is not None
    async with identity.store.unit_of_work(read_only=True) as uow:
        own = await uow.session_policies.get(tenant_id) or SessionPolicy(tenant_id)
    return policy_json(own, own.over(bounds.defaults))


async def set_session_policy(identity: Identity, tenant_id: str, *,
                             idle_timeout: str | None = None,
                             absolute_timeout: str | None = None,
                             max_sessions: str | None = None, on_limit: str | None = None,
                             actor: str = "cli") -> dict[str, object]:
    """Change the fields given; returns the tenant's policy and the effective one."""
    if on_limit is not None and on_limit not in (*ON_LIMIT, DEFAULT):
        raise AdminError(f"--on-limit: one of {', '.join(ON_LIMIT)} (or {DEFAULT})")
    await _tenant_exists(identity, tenant_id)
    bounds = identity.login.bounds
    assert bounds is not None
    async with transaction(identity.store, identity.audit) as tx:
        current = await tx.uow.session_policies.get(tenant_id) or SessionPolicy(tenant_id)
        policy = replace(
            current,
            idle_timeout=_duration("idle-timeout", idle_timeout, current.idle_timeout),
            absolute_timeout=_duration("absolute-timeout", absolute_timeout,
                                       current.absolute_timeout),
            max_sessions=_count(max_sessions, current.max_sessions),
            on_limit=current.on_limit if on_limit is None
            else None if on_limit == DEFAULT else on_limit,
            updated_at=identity.clock.now())
        await tx.uow.session_policies.put(policy)
        tx.audit(events.SESSION_POLICY_CHANGED, tenant_id=tenant_id, actor=actor,
                 idle_timeout=policy.idle_timeout, absolute_timeout=policy.absolute_timeout,
                 max_sessions=policy.max_sessions, on_limit=policy.on_limit)
    return policy_json(policy, policy.over(bounds.defaults))
