"""The ports the application layer uses besides the store's (``store.ports``).

Each is a small typed Protocol implemented elsewhere: the audit trail by
``observability.audit.AuditLog``, password hashing by ``identity.login.PasswordHasher``,
access-token resolution by ``protocol.rfc9068.AccessTokenIssuer``, client lookup and the
client cache by ``protocol.clients.ClientDirectory``. The composition root
(``identity.compose``) passes the implementations in; nothing here imports them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from tessera.core.clients import Client
from tessera.store.ports import AuditRecord

__all__ = ["AuditTrail", "ClientCache", "ClientLookup", "PasswordHashing", "TokenResolver"]


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


class TokenResolver(Protocol):
    async def resolve(self, token: str, *, now: float, leeway: float,
                      audience: str | None = None) -> dict[str, Any]:
        """The claims of an access token this service issued (a JWT it signed, or a
        reference token it stored); raise ``keys.TokenInvalid`` otherwise."""
        ...


class ClientLookup(Protocol):
    async def get(self, client_id: str) -> Client | None:
        """The registered client, or None (may be cached for a few seconds)."""
        ...


class ClientCache(Protocol):
    def forget(self, client_id: str) -> None:
        """Drop the client from this process's cache (after it changed)."""
        ...
