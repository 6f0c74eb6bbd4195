"""Second factors (``user_factors``) over one connection inside one transaction.

Writes that must be race-safe are single conditional statements: ``confirm`` and
``use_step`` are ``UPDATE ... WHERE`` (one concurrent caller changes the row), and
``put_pending``/``replace`` are dialect upserts (``INSERT ... ON CONFLICT``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.store.ports import SealedFactor
from tessera.store.sql.schema import user_factors

__all__ = ["SqlFactorRepo"]

_KEY = ("user_id", "kind")


def _factor(row: RowMapping) -> SealedFactor:
    return SealedFactor(user_id=row["user_id"], kind=row["kind"],
                        sealed_secret=row["sealed_secret"], created_at=row["created_at"],
                        confirmed_at=row["confirmed_at"],
                        last_step=None if row["last_step"] is None else int(row["last_step"]))


class SqlFactorRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    def _insert(self, factor: SealedFactor) -> Any:
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(user_factors).values(
            user_id=factor.user_id, kind=factor.kind, sealed_secret=factor.sealed_secret,
            created_at=factor.created_at, confirmed_at=factor.confirmed_at,
            last_step=factor.last_step)

    async def get(self, user_id: str, kind: str) -> SealedFactor | None:
        row = (await self.conn.execute(select(user_factors).where(
            user_factors.c.user_id == user_id, user_factors.c.kind == kind))).mappings().first()
        return _factor(row) if row else None

    async def put_pending(self, factor: SealedFactor) -> bool:
        stmt = self._insert(factor)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={"sealed_secret": stmt.excluded.sealed_secret,
                  "created_at": stmt.excluded.created_at,
                  "confirmed_at": None, "last_step": None},
            where=user_factors.c.confirmed_at.is_(None))
        return bool((await self.conn.execute(stmt)).rowcount)

    async def confirm(self, user_id: str, kind: str, *, step: int, at: float) -> bool:
        result = await self.conn.execute(update(user_factors).where(
            user_factors.c.user_id == user_id, user_factors.c.kind == kind,
            user_factors.c.confirmed_at.is_(None)).values(confirmed_at=at, last_step=step))
        return bool(result.rowcount)

    async def use_step(self, user_id: str, kind: str, step: int) -> bool:
        result = await self.conn.execute(update(user_factors).where(
            user_factors.c.user_id == user_id, user_factors.c.kind == kind,
            user_factors.c.confirmed_at.is_not(None),
            or_(user_factors.c.last_step.is_(None), user_factors.c.last_step < step),
        ).values(last_step=step))
        return bool(result.rowcount)

    async def replace(self, factor: SealedFactor) -> None:
        stmt = self._insert(factor)
        await self.conn.execute(stmt.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={name: stmt.excluded[name] for name in
                  ("sealed_secret", "created_at", "confirmed_at", "last_step")}))

    async def delete(self, user_id: str, kind: str) -> bool:
        result = await self.conn.execute(delete(user_factors).where(
            user_factors.c.user_id == user_id, user_factors.c.kind == kind))
        return bool(result.rowcount)
