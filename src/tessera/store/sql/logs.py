"""The append-only tables: the revocation outbox (sequenced, relayed to the buses) and the
hash-chained audit trail; plus the signing-key rows."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.core.audit_chain import GENESIS, chain_link
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.store.ports import (
    LEGACY_AUDIT_FIELDS,
    AuditFilter,
    AuditRecord,
    SealedKey,
    StoredAudit,
)
from tessera.store.sql.private_connection import sqlite_sql
from tessera.store.sql.repos_base import Repo as _Repo
from tessera.store.sql.schema import (
    audit_events,
    revocation_events,
    signing_keys,
)

__all__ = ["SQLITE_APPEND", "SQLITE_AUDIT_HEAD", "SQLITE_AUDIT_INSERT", "SqlAuditRepo",
           "SqlKeyRepo", "SqlRevocationLog", "with_seqs"]


# Statements on every revocation and every relay or fan-out read, built once: SQLAlchemy
# builds and keys a statement made per call anew (~150 µs of CPU each, as much as the rest
# of executing it); one made once is keyed once.
_APPEND = insert(revocation_events).returning(revocation_events.c.seq)
_SINCE = (select(revocation_events).where(revocation_events.c.seq > bindparam("after"))
          .order_by(revocation_events.c.seq).limit(bindparam("limit")))
_AUDIT_HEAD = (select(audit_events.c.chain_hash)
               .where(audit_events.c.chain_hash.is_not(None))
               .order_by(audit_events.c.id.desc()).limit(1))
_AUDIT_INSERT = insert(audit_events)

# The same, for the audit writer's transactions on SQLite (``audit_writer``).
SQLITE_AUDIT_HEAD = sqlite_sql(_AUDIT_HEAD, literal=True)
SQLITE_AUDIT_INSERT = sqlite_sql(_AUDIT_INSERT, columns=("event", "at", "fields",
                                                         "chain_hash"))
SQLITE_APPEND = sqlite_sql(_APPEND, columns=("kind", "key", "at", "expires_at", "data"))


def with_seqs(events: Sequence[RevocationEvent], seqs: Sequence[int]
              ) -> list[RevocationEvent]:
    """``events`` as appended: each with the outbox seq it was given, in order."""
    return [dataclasses.replace(e, seq=seq) for e, seq in zip(events, seqs, strict=True)]


def _event(row: RowMapping) -> RevocationEvent:
    return RevocationEvent(kind=row["kind"], key=row["key"], at=row["at"],
                           expires_at=row["expires_at"], data=dict(row["data"]),
                           seq=int(row["seq"]))


class SqlRevocationLog(_Repo):
    def __init__(self, conn: AsyncConnection) -> None:
        super().__init__(conn)
        self.appended: list[RevocationEvent] = []
        """Events appended in this unit of work, seqs assigned (handed to relays after
        commit)."""

    async def append(self, event: RevocationEvent) -> int:
        if self.conn.dialect.name == "postgresql":
            # Serialise outbox writers until commit, so sequence order is commit order and
            # a relay reading "seq > cursor" can never skip a slower transaction's event.
            await self.conn.execute(text("SELECT pg_advisory_xact_lock(7362817)"))
        result = await self.conn.execute(_APPEND, {
            "kind": event.kind, "key": event.key, "at": event.at,
            "expires_at": event.expires_at, "data": event.data})
        seq = int(result.scalar_one())
        self.appended.append(dataclasses.replace(event, seq=seq))
        return seq

    async def append_many(self, events: Sequence[RevocationEvent]) -> list[int]:
        if len(events) <= 1:
            return [await self.append(e) for e in events]
        if self.conn.dialect.name == "postgresql":
            await self.conn.execute(text("SELECT pg_advisory_xact_lock(7362817)"))
        # one INSERT … VALUES (…), (…) RETURNING: sequence numbers follow the list's order
        result = await self.conn.execute(
            insert(revocation_events).returning(revocation_events.c.seq,
                                                sort_by_parameter_order=True),
            [{"kind": e.kind, "key": e.key, "at": e.at, "expires_at": e.expires_at,
              "data": e.data} for e in events])
        seqs = [int(seq) for seq in result.scalars()]
        self.appended += with_seqs(events, seqs)
        return seqs

    async def is_token_revoked(self, jti: str) -> bool:
        row = await self._one(select(revocation_events.c.seq).where(
            revocation_events.c.kind == RevocationKind.TOKEN_REVOKED,
            revocation_events.c.key == jti).limit(1))
        return row is not None

    async def seq_of(self, kind: str, key: str) -> int | None:
        seq = (await self.conn.execute(select(func.max(revocation_events.c.seq)).where(
            revocation_events.c.kind == kind, revocation_events.c.key == key))).scalar()
        return None if seq is None else int(seq)
    async def revoked_before(self, grains: Sequence[tuple[str, str]]) -> float | None:
        if not grains:
            return None
        rows = await self.conn.execute(
            select(revocation_events.c.at, revocation_events.c.data).where(or_(*(
                (revocation_events.c.kind == kind) & (revocation_events.c.key == key)
                for kind, key in grains))))
        latest: float | None = None
        for at, data in rows:
            before = data.get("before", at) if isinstance(data, dict) else at
            if isinstance(before, int | float) and not isinstance(before, bool):
                latest = float(before) if latest is None else max(latest, float(before))
        return latest

    async def since(self, seq: int, *, limit: int) -> list[RevocationEvent]:
        rows = await self.conn.execute(_SINCE, {"after": seq, "limit": limit})
        return [_event(r) for r in rows.mappings()]

    async def last_before(self, at: float) -> int:
        # newest first: events are appended roughly in ``at`` order, so this stops early
        result = await self.conn.execute(
            select(revocation_events.c.seq).where(revocation_events.c.at < at)
            .order_by(revocation_events.c.seq.desc()).limit(1))
        return int(result.scalar() or 0)

    async def last_seq(self) -> int:
        result = await self.conn.execute(select(func.coalesce(func.max(revocation_events.c.seq),
                                                              0)))
        return int(result.scalar_one())


    async def live(self, now: float) -> tuple[int, list[RevocationEvent]]:
        seq = await self.last_seq()
        rows = await self.conn.execute(select(revocation_events)
                                       .where(revocation_events.c.seq <= seq,
                                              revocation_events.c.expires_at > now)
                                       .order_by(revocation_events.c.seq))
        return seq, [_event(r) for r in rows.mappings()]

    async def prune(self, before: float) -> int:
        # The newest row always stays: SQLite would otherwise hand out its seq again.
        newest = select(func.max(revocation_events.c.seq)).scalar_subquery()
        result = await self.conn.execute(delete(revocation_events).where(
            revocation_events.c.expires_at < before, revocation_events.c.seq < newest))
        return int(result.rowcount or 0)


class SqlAuditRepo(_Repo):
    async def append(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        if self.conn.dialect.name == "postgresql":
            # One writer at a time extends the chain (held until commit, so id order is
            # chain order); SQLite writers are serialised already.
            await self.conn.execute(text("SELECT pg_advisory_xact_lock(7362818)"))
        head = (await self.conn.execute(_AUDIT_HEAD)).scalar()
        previous = head or GENESIS
        rows = []
        for r in records:
            previous = chain_link(previous, r.event, r.at, r.fields)
            rows.append({"event": r.event, "at": r.at, "fields": r.fields,
                         "chain_hash": previous})
        await self.conn.execute(_AUDIT_INSERT, rows)

    async def scan(self, *, after_id: int = 0, limit: int = 1000) -> list[StoredAudit]:
        rows = await self.conn.execute(select(audit_events)
                                       .where(audit_events.c.id > after_id)
                                       .order_by(audit_events.c.id).limit(limit))
        return [StoredAudit(id=int(r["id"]), record=AuditRecord(
            event=r["event"], at=r["at"], fields=dict(r["fields"])),
            chain_hash=r["chain_hash"]) for r in rows.mappings()]

    async def query(self, *, event: str | None = None, limit: int = 100) -> list[AuditRecord]:
        stmt = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if event is not None:
            stmt = stmt.where(audit_events.c.event == event)
        rows = await self.conn.execute(stmt)
        return [AuditRecord(event=r["event"], at=r["at"], fields=dict(r["fields"]))
                for r in rows.mappings()]

    async def search(self, criteria: AuditFilter, *, before_id: int | None = None,
                     limit: int = 50) -> list[StoredAudit]:
        stmt = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(audit_events.c.id < before_id)
        if criteria.event is not None:
            stmt = stmt.where(audit_events.c.event == criteria.event)
        for name, legacy in LEGACY_AUDIT_FIELDS.items():
            value = getattr(criteria, name)
            if value is not None:
                stmt = stmt.where(or_(audit_events.c.fields[name].as_string() == value,
                                      audit_events.c.fields[legacy].as_string() == value))
        if criteria.since is not None:
            stmt = stmt.where(audit_events.c.at >= criteria.since)
        if criteria.until is not None:
            stmt = stmt.where(audit_events.c.at <= criteria.until)
        return _stored(await self.conn.execute(stmt))

    async def naming(self, values: Sequence[str], *, fields: Sequence[str],
                     limit: int = 500) -> list[StoredAudit]:
        if not values or not fields:
            return []
        stmt = (select(audit_events)
                .where(or_(*(audit_events.c.fields[f].as_string().in_(values) for f in fields)))
                .order_by(audit_events.c.id).limit(limit))
        return _stored(await self.conn.execute(stmt))


def _stored(result: Any) -> list[StoredAudit]:
    return [StoredAudit(id=int(r["id"]), record=AuditRecord(
        event=r["event"], at=r["at"], fields=dict(r["fields"])),
        chain_hash=r["chain_hash"]) for r in result.mappings()]


class SqlKeyRepo(_Repo):
    def __init__(self, conn: AsyncConnection, *, read_only: bool) -> None:
        super().__init__(conn)
        self._read_only = read_only

    async def all(self) -> list[SealedKey]:
        if not self._read_only and self.conn.dialect.name == "postgresql":
            # Read-modify-write of the ring (bootstrap, rotate) must not interleave: two
            # workers starting at once would each see no keys and create two active ones.
            # Self-conflicting, and plain reads (JWKS reloads) pass. SQLite write
            # transactions are serialised already (BEGIN IMMEDIATE).
            await self.conn.execute(text("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE"))
        rows = await self.conn.execute(select(signing_keys).order_by(signing_keys.c.created_at))
        return [SealedKey(kid=r["kid"], alg=r["alg"], state=r["state"],
                          sealed_private=r["sealed_private"], created_at=r["created_at"],
                          changed_at=r["changed_at"]) for r in rows.mappings()]

    async def add(self, key: SealedKey) -> None:
        await self.conn.execute(insert(signing_keys).values(
            kid=key.kid, alg=key.alg, state=key.state, sealed_private=key.sealed_private,
            created_at=key.created_at, changed_at=key.changed_at))

    async def set_state(self, kid: str, state: str, *, at: float) -> None:
        await self.conn.execute(update(signing_keys).where(signing_keys.c.kid == kid)
                                .values(state=state, changed_at=at))
