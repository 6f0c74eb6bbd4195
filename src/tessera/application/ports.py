"""The ports the application layer uses besides the store's (``store.ports``).

Each is a small typed Protocol implemented elsewhere: the audit trail by
``observability.audit.AuditLog``, password hashing by ``identity.login.PasswordHasher``,
the client cache by ``protocol.clients.ClientDirectory``. The composition root
(``identity.compose``) passes the implementations in; nothing here imports them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from tessera.store.ports import AuditRecord

__all__ = ["AuditTrail", "ClientCache", "PasswordHashing"]


class AuditTrail(Protocol):
    """Audit records: made inside a unit of work, stored with it, emitted after commit; or
    recorded on their own."""

    def make(self, event: str, **fields: Any) -> AuditRecord:
        """A record of ``event`` now (``observability.events`` names the events)."""
        ...

    def emit(self, records: Iterable[AuditRecord]) -> None:
        """Hand committed records to the log lines and listeners (metrics)."""
        ...

    async def record(self, event: str, **fields: Any) -> None:
        """Record one event in a transaction of its own and wait until it is committed
        (for events that change no other state: a token issued without a session)."""
        ...


class PasswordHashing(Protocol):
    def hash(self, password: str) -> str:
        """A self-describing hash of ``password`` (argon2id in the identity service)."""
        ...


class ClientCache(Protocol):
    def forget(self, client_id: str) -> None:
        """Drop the client from this process's cache (after it changed)."""
        ...
