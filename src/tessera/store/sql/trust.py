"""Trust-boundary tables over one connection inside one transaction: tenants (and their
suspension), roles held by users, consents to third-party clients, TOTP recovery codes.

Conditional writes are single statements (``INSERT ... ON CONFLICT DO NOTHING``,
``UPDATE ... WHERE``), so of concurrent callers exactly one sees True."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from tessera.core.consents import Consent
from tessera.core.tenants import Tenant
from tessera.store.sql.repos_base import Repo
from tessera.store.sql.schema import consents, recovery_codes, tenants, user_roles

__all__ = ["SqlConsentRepo", "SqlRecoveryCodeRepo", "SqlRoleRepo", "SqlTenantRepo"]


def _tenant(row: RowMapping) -> Tenant:
    return Tenant(tenant_id=row["tenant_id"], name=row["name"], created_at=row["created_at"],
                  suspended_at=row["suspended_at"])


class _Upserts(Repo):
    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)


class SqlTenantRepo(_Upserts):
    async def add(self, tenant: Tenant) -> bool:
        result = await self.conn.execute(self._insert(tenants).values(
            tenant_id=tenant.tenant_id, name=tenant.name, created_at=tenant.created_at,
            suspended_at=tenant.suspended_at).on_conflict_do_nothing())
        return bool(result.rowcount)

    async def get(self, tenant_id: str) -> Tenant | None:
        row = await self._one(select(tenants).where(tenants.c.tenant_id == tenant_id))
        return _tenant(row) if row else None

    async def all(self) -> list[Tenant]:
        rows = await self.conn.execute(select(tenants).order_by(tenants.c.tenant_id))
        return [_tenant(r) for r in rows.mappings()]

    async def set_suspended(self, tenant_id: str, at: float | None) -> bool:
        stmt = update(tenants).where(tenants.c.tenant_id == tenant_id)
        stmt = stmt.where(tenants.c.suspended_at.is_(None) if at is not None
                          else tenants.c.suspended_at.is_not(None))
        result = await self.conn.execute(stmt.values(suspended_at=at))
        return bool(result.rowcount)


class SqlRoleRepo(_Upserts):
    async def grant(self, user_id: str, role: str, *, at: float, by: str) -> bool:
        result = await self.conn.execute(self._insert(user_roles).values(
            user_id=user_id, role=role, granted_at=at, granted_by=by[:200])
            .on_conflict_do_nothing())
        return bool(result.rowcount)

    async def revoke(self, user_id: str, role: str) -> bool:
        result = await self.conn.execute(delete(user_roles).where(
            user_roles.c.user_id == user_id, user_roles.c.role == role))
        return bool(result.rowcount)

    async def of_user(self, user_id: str) -> frozenset[str]:
        rows = await self.conn.execute(select(user_roles.c.role).where(
            user_roles.c.user_id == user_id))
        return frozenset(str(r) for r in rows.scalars())

    async def of_users(self, user_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        if not user_ids:
            return {}
        rows = await self.conn.execute(select(user_roles.c.user_id, user_roles.c.role).where(
            user_roles.c.user_id.in_(user_ids)))
        found: dict[str, set[str]] = {}
        for user_id, role in rows:
            found.setdefault(str(user_id), set()).add(str(role))
        return {k: frozenset(v) for k, v in found.items()}

    async def revoke_all(self, user_id: str) -> int:
        result = await self.conn.execute(delete(user_roles).where(
            user_roles.c.user_id == user_id))
        return int(result.rowcount or 0)


class SqlConsentRepo(_Upserts):
    async def get(self, user_id: str, client_id: str) -> Consent | None:
        row = await self._one(select(consents).where(
            consents.c.user_id == user_id, consents.c.client_id == client_id))
        if row is None:
            return None
        return Consent(user_id=row["user_id"], client_id=row["client_id"],
                       scope=frozenset(row["scope"]), granted_at=row["granted_at"])

    async def put(self, consent: Consent) -> None:
        stmt = self._insert(consents).values(
            user_id=consent.user_id, client_id=consent.client_id,
            scope=sorted(consent.scope), granted_at=consent.granted_at)
        await self.conn.execute(stmt.on_conflict_do_update(
            index_elements=["user_id", "client_id"],
            set_={"scope": stmt.excluded.scope, "granted_at": stmt.excluded.granted_at}))

    async def delete_for_user(self, user_id: str) -> int:
        result = await self.conn.execute(delete(consents).where(consents.c.user_id == user_id))
        return int(result.rowcount or 0)

    async def delete_for_client(self, client_id: str) -> int:
        result = await self.conn.execute(delete(consents).where(
            consents.c.client_id == client_id))
        return int(result.rowcount or 0)


class SqlRecoveryCodeRepo(_Upserts):
    async def replace(self, user_id: str, code_hashes: Sequence[str], *, at: float) -> None:
        await self.delete_for_user(user_id)
        if code_hashes:
            await self.conn.execute(self._insert(recovery_codes), [
                {"user_id": user_id, "code_hash": h, "created_at": at, "used_at": None}
                for h in code_hashes])

    async def use(self, user_id: str, code_hash: str, *, at: float) -> bool:
        result = await self.conn.execute(update(recovery_codes).where(
            recovery_codes.c.user_id == user_id, recovery_codes.c.code_hash == code_hash,
            recovery_codes.c.used_at.is_(None)).values(used_at=at))
        return bool(result.rowcount)

    async def remaining(self, user_id: str) -> int:
        result = await self.conn.execute(select(func.count()).where(
            recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None)))
        return int(result.scalar_one())

    async def delete_for_user(self, user_id: str) -> int:
        result = await self.conn.execute(delete(recovery_codes).where(
            recovery_codes.c.user_id == user_id))
        return int(result.rowcount or 0)
