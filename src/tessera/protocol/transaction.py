"""A unit of work that also carries audit records, emitted as log lines after commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tessera.core.revocation import RevocationEvent
from tessera.observability.audit import AuditLog
from tessera.store.ports import AuditRecord, Store, UnitOfWork

__all__ = ["Transaction", "transaction"]


class Transaction:
    def __init__(self, uow: UnitOfWork, audit_log: AuditLog) -> None:
        self.uow = uow
        self._audit_log = audit_log
        self.records: list[AuditRecord] = []
        self.events: list[RevocationEvent] = []

    def audit(self, event: str, **fields: Any) -> None:
        """Record an audit event in this transaction (committed with the state change)."""
        self.records.append(self._audit_log.make(event, **fields))

    async def publish(self, event: RevocationEvent) -> int:
        """Append a revocation event to the outbox in this transaction."""
        seq = await self.uow.revocations.append(event)
        self.events.append(event)
        return seq


@asynccontextmanager
async def transaction(store: Store, audit_log: AuditLog) -> AsyncIterator[Transaction]:
    async with store.unit_of_work() as uow:
        tx = Transaction(uow, audit_log)
        yield tx
        await uow.audit.append(tx.records)
    audit_log.emit(tx.records)
