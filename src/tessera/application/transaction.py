"""A unit of work that also carries audit records (emitted as log lines after commit) and
revocation events (written to the outbox just before commit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tessera.application.ports import AuditTrail
from tessera.core.revocation import RevocationEvent
from tessera.store.ports import AuditRecord, Store, UnitOfWork

__all__ = ["Transaction", "transaction"]


class Transaction:
    def __init__(self, uow: UnitOfWork, audit_log: AuditTrail) -> None:
        self.uow = uow
        self._audit_log = audit_log
        self.records: list[AuditRecord] = []
        self.events: list[RevocationEvent] = []

    def audit(self, event: str, **fields: Any) -> None:
        """Record an audit event in this transaction (committed with the state change)."""
        self.records.append(self._audit_log.make(event, **fields))

    def publish(self, event: RevocationEvent) -> None:
        """Queue a revocation event for the outbox of this transaction. The rows are
        written just before commit: outbox writers are serialised (sequence order must be
        commit order), so the later that lock is taken, the shorter it is held and the
        fewer row locks can be waited on while holding it."""
        self.events.append(event)


@asynccontextmanager
async def transaction(store: Store, audit_log: AuditTrail) -> AsyncIterator[Transaction]:
    async with store.unit_of_work() as uow:
        tx = Transaction(uow, audit_log)
        yield tx
        await uow.audit.append(tx.records)
        for event in tx.events:
            await uow.revocations.append(event)
    audit_log.emit(tx.records)
