"""The base of the SQL repositories: one connection, one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["Repo"]


class Repo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _one(self, stmt: Any, params: Mapping[str, Any] | None = None
                   ) -> RowMapping | None:
        return (await self.conn.execute(stmt, params)).mappings().first()
