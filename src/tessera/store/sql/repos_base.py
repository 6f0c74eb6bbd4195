"""The base of the SQL repositories: one connection, one transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["Repo"]


class Repo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _one(self, stmt: Any) -> RowMapping | None:
        return (await self.conn.execute(stmt)).mappings().first()
