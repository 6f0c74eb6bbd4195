"""Good standing: may this user, client or tenant act *now*? One rule, one place.

Every grant (authorization code, refresh, token exchange, impersonation, client
credentials), the login, the authorization endpoint, introspection and the admin API ask
here, so "a disabled user / a deleted client / a suspended tenant gets nothing" is
written once:

- a user is in good standing when it exists, is neither disabled nor deleted, and its
  tenant is not suspended;
- a tenant is in good standing when it is not suspended (an unregistered tenant counts as
  active: users and clients created before tenants were registered still work);
- a client is in good standing when it exists, is enabled and its tenant is; clients are
  read through ``ClientDirectory`` and tenants, for client authentication only, through
  ``TenantDirectory`` (both cached for a few seconds, forgotten at once when this process
  changes them or hears a ``client.revoked``/``tenant.revoked`` event).

``check_*`` raise ``NotInGoodStanding`` (its ``reason`` is for logs and audit); callers
turn it into their protocol's refusal (``invalid_grant``, ``invalid_client``,
``{"active": false}``, ``access_denied``).
"""

from __future__ import annotations

from tessera.core.clients import Client
from tessera.core.clock import Clock
from tessera.core.roles import Reach
from tessera.core.tenants import Tenant, tenant_of
from tessera.core.ttl_cache import TtlCache
from tessera.core.users import DEFAULT_TENANT, User
from tessera.store.ports import Store, UnitOfWork

__all__ = ["NotInGoodStanding", "TenantDirectory", "check_tenant", "check_user",
           "client_tenant", "judge_user", "reach_of"]


class NotInGoodStanding(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def client_tenant(client: Client) -> str:
    """The tenant a client belongs to (the default one when registered without)."""
    return tenant_of(client.tenant_id, DEFAULT_TENANT)


def _judge_tenant(tenant: Tenant | None) -> None:
    if tenant is not None and not tenant.active:
        raise NotInGoodStanding("tenant_suspended")


def _judge_user_row(user: User | None, tenant_id: str | None) -> User:
    if user is None or user.deleted_at is not None:
        raise NotInGoodStanding("user_unknown")
    if user.disabled:
        raise NotInGoodStanding("user_disabled")
    if tenant_id is not None and user.tenant_id != tenant_id:
        raise NotInGoodStanding("tenant_mismatch")
    return user


def judge_user(user: User | None, tenant: Tenant | None, *,
               tenant_id: str | None = None) -> User:
    """``check_user`` over rows already read: the user row and its tenant's (None when
    the tenant is not registered)."""
    checked = _judge_user_row(user, tenant_id)
    _judge_tenant(tenant)
    return checked


async def check_tenant(uow: UnitOfWork, tenant_id: str) -> None:
    _judge_tenant(await uow.tenants.get(tenant_id))


async def check_user(uow: UnitOfWork, user_id: str, *, tenant_id: str | None = None) -> User:
    """The user, if it may act now (and belongs to ``tenant_id`` when given)."""
    user = _judge_user_row(await uow.users.get(user_id), tenant_id)
    await check_tenant(uow, user.tenant_id)
    return user


async def reach_of(uow: UnitOfWork, user_id: str) -> Reach:
    """What a user may administer, read now: in good standing, with the roles held now."""
    user = await check_user(uow, user_id)
    return Reach(user.user_id, user.tenant_id, await uow.roles.of_user(user_id))


class TenantDirectory:
    """Whether a tenant is suspended, cached for ``ttl`` seconds per process (client
    authentication is the hot path). Suspension through this process is seen at once
    (``forget``); other processes see it when the ``tenant.revoked`` event reaches them,
    or after ``ttl``. Session-bound grants never rely on this cache."""

    def __init__(self, store: Store, clock: Clock, *, ttl: float = 5.0) -> None:
        self._store = store
        self._clock = clock
        self._cache: TtlCache[bool] = TtlCache(ttl)

    async def suspended(self, tenant_id: str) -> bool:
        now = self._clock.now()
        cached, suspended = self._cache.fresh(tenant_id, now)
        if cached:
            return bool(suspended)
        async with self._store.unit_of_work(read_only=True) as uow:
            tenant = await uow.tenants.get(tenant_id)
        suspended = tenant is not None and not tenant.active
        self._cache.put(tenant_id, suspended, now)
        return suspended

    def forget(self, tenant_id: str | None = None) -> None:
        """Drop one tenant (or every tenant) from the cache."""
        self._cache.forget(tenant_id)
