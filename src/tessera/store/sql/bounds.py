"""Session bounds and device authorization over one connection inside one transaction:
per-tenant session policies and device authorization requests (RFC 8628).

Conditional writes (``decide``, ``consume``) are single ``UPDATE ... WHERE`` statements,
so of concurrent callers exactly one sees True."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from tessera.core.device import APPROVED, CONSUMED, DENIED, PENDING, DeviceCode
from tessera.core.session_bounds import SessionPolicy
from tessera.store.ports import StoreError
from tessera.store.sql.repos_base import Repo
from tessera.store.sql.schema import device_codes, session_policies

__all__ = ["SqlDeviceCodeRepo", "SqlSessionPolicyRepo"]


def _policy(row: RowMapping) -> SessionPolicy:
    return SessionPolicy(tenant_id=row["tenant_id"], idle_timeout=row["idle_timeout"],
                         absolute_timeout=row["absolute_timeout"],
                         max_sessions=row["max_sessions"], on_limit=row["on_limit"],
                         updated_at=row["updated_at"])


class SqlSessionPolicyRepo(Repo):
    async def get(self, tenant_id: str) -> SessionPolicy | None:
        row = await self._one(select(session_policies).where(
            session_policies.c.tenant_id == tenant_id))
        return _policy(row) if row else None

    async def put(self, policy: SessionPolicy) -> None:
        dialect: Any = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        values = {"idle_timeout": policy.idle_timeout,
                  "absolute_timeout": policy.absolute_timeout,
                  "max_sessions": policy.max_sessions, "on_limit": policy.on_limit,
                  "updated_at": policy.updated_at}
        await self.conn.execute(
            dialect.insert(session_policies).values(tenant_id=policy.tenant_id, **values)
            .on_conflict_do_update(index_elements=["tenant_id"], set_=values))

    async def all(self) -> list[SessionPolicy]:
        rows = await self.conn.execute(select(session_policies)
                                       .order_by(session_policies.c.tenant_id))
        return [_policy(r) for r in rows.mappings()]


def _device(row: RowMapping) -> DeviceCode:
    return DeviceCode(
        device_code_hash=row["device_code_hash"], user_code_hash=row["user_code_hash"],
        client_id=row["client_id"], tenant_id=row["tenant_id"],
        scope=frozenset(row["scope"]), audience=tuple(row["audience"]),
        created_at=row["created_at"], expires_at=row["expires_at"],
        interval=row["interval"], status=row["status"],
        last_polled_at=row["last_polled_at"], user_id=row["user_id"], sid=row["sid"],
        decided_at=row["decided_at"], client_address=row["client_address"])


class SqlDeviceCodeRepo(Repo):
    async def add(self, code: DeviceCode) -> None:
        try:
            async with self.conn.begin_nested():
                await self.conn.execute(insert(device_codes).values(
                    device_code_hash=code.device_code_hash,
                    user_code_hash=code.user_code_hash, client_id=code.client_id,
                    tenant_id=code.tenant_id, scope=sorted(code.scope),
                    audience=list(code.audience), created_at=code.created_at,
                    expires_at=code.expires_at, interval=code.interval, status=code.status,
                    last_polled_at=code.last_polled_at, user_id=code.user_id, sid=code.sid,
                    decided_at=code.decided_at, client_address=code.client_address))
        except IntegrityError as exc:
            raise StoreError("device or user code taken") from exc

    async def get(self, device_code_hash: str) -> DeviceCode | None:
        row = await self._one(select(device_codes).where(
            device_codes.c.device_code_hash == device_code_hash))
        return _device(row) if row else None

    async def by_user_code(self, user_code_hash: str) -> DeviceCode | None:
        row = await self._one(select(device_codes).where(
            device_codes.c.user_code_hash == user_code_hash))
        return _device(row) if row else None

    async def decide(self, user_code_hash: str, *, approve: bool, user_id: str,
                     sid: str | None, at: float) -> bool:
        result = await self.conn.execute(
            update(device_codes).where(device_codes.c.user_code_hash == user_code_hash,
                                       device_codes.c.status == PENDING,
                                       device_codes.c.expires_at > at)
            .values(status=APPROVED if approve else DENIED, user_id=user_id,
                    sid=sid if approve else None, decided_at=at))
        return bool(result.rowcount)

    async def poll(self, device_code_hash: str, *, at: float) -> DeviceCode | None:
        before = await self._one(select(device_codes).where(
            device_codes.c.device_code_hash == device_code_hash).with_for_update())
        if before is None:
            return None
        await self.conn.execute(update(device_codes).where(
            device_codes.c.device_code_hash == device_code_hash).values(last_polled_at=at))
        return _device(before)

    async def slow_down(self, device_code_hash: str, *, by: int) -> None:
        await self.conn.execute(update(device_codes).where(
            device_codes.c.device_code_hash == device_code_hash)
            .values(interval=device_codes.c.interval + by))

    async def consume(self, device_code_hash: str, *, at: float) -> bool:
        result = await self.conn.execute(
            update(device_codes).where(device_codes.c.device_code_hash == device_code_hash,
                                       device_codes.c.status == APPROVED)
            .values(status=CONSUMED))
        return bool(result.rowcount)

    async def prune(self, before: float) -> int:
        result = await self.conn.execute(delete(device_codes).where(
            device_codes.c.expires_at < before))
        return int(result.rowcount or 0)
