"""Reference access tokens and used client-assertion ``jti`` values, over one connection
inside one transaction.

``use`` of an assertion ``jti`` is one ``INSERT ... ON CONFLICT DO NOTHING``: of
concurrent callers presenting the same assertion exactly one sees True."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from tessera.store.ports import ReferenceToken
from tessera.store.sql.repos_base import Repo
from tessera.store.sql.schema import client_assertion_jtis, reference_tokens

__all__ = ["SqlAssertionReplayRepo", "SqlReferenceTokenRepo"]


class SqlReferenceTokenRepo(Repo):
    async def add(self, token: ReferenceToken) -> None:
        await self.conn.execute(reference_tokens.insert().values(
            token_hash=token.token_hash, jti=token.jti, client_id=token.client_id,
            tenant_id=token.tenant_id, sid=token.sid, claims=token.claims,
            expires_at=token.expires_at))

    async def get(self, token_hash: str) -> ReferenceToken | None:
        row = await self._one(select(reference_tokens).where(
            reference_tokens.c.token_hash == token_hash))
        if row is None:
            return None
        return ReferenceToken(
            token_hash=row["token_hash"], jti=row["jti"], client_id=row["client_id"],
            tenant_id=row["tenant_id"], sid=row["sid"], claims=dict(row["claims"]),
            expires_at=row["expires_at"])

    async def prune(self, before: float) -> int:
        result = await self.conn.execute(delete(reference_tokens).where(
            reference_tokens.c.expires_at < before))
        return int(result.rowcount or 0)


class SqlAssertionReplayRepo(Repo):
    def _insert(self) -> Any:
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(client_assertion_jtis)

    async def use(self, client_id: str, jti: str, *, expires_at: float, now: float) -> bool:
        # an expired row of the same jti no longer protects anything: clear it first
        await self.conn.execute(delete(client_assertion_jtis).where(
            client_assertion_jtis.c.client_id == client_id,
            client_assertion_jtis.c.jti == jti, client_assertion_jtis.c.expires_at < now))
        result = await self.conn.execute(self._insert().values(
            client_id=client_id, jti=jti, expires_at=expires_at).on_conflict_do_nothing())
        return bool(result.rowcount)

    async def prune(self, before: float) -> int:
        result = await self.conn.execute(delete(client_assertion_jtis).where(
            client_assertion_jtis.c.expires_at < before))
        return int(result.rowcount or 0)
