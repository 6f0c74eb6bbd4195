"""Store ports: one small Protocol per aggregate, grouped in a unit of work.

Guarantees every adapter gives (the contract suite in tests/contract checks them):
- Everything done through one ``UnitOfWork`` commits atomically or not at all; a state
  change and its revocation/audit rows are written in the same transaction (outbox).
- Conditional verbs (``rotate``, ``consume``, ``revoke``) are race-safe: of concurrent
  callers exactly one sees ``True`` / a result, the others see the state it left.
- A failure to reach the database raises ``StoreError``, never a driver exception; a
  lost conflict with a concurrent transaction raises its subclass ``StoreConflict``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from tessera.core.clients import Client
from tessera.core.refresh import RefreshFamily, RefreshToken
from tessera.core.revocation import RevocationEvent
from tessera.core.sessions import AuthorizationCode, Session
from tessera.core.users import User

__all__ = [
    "AuditRecord",
    "AuditRepo",
    "ClientRepo",
    "CodeRepo",
    "KeyRepo",
    "RefreshRepo",
    "RevocationLog",
    "SealedKey",
    "SessionRepo",
    "Store",
    "StoreConflict",
    "StoreError",
    "StoredAudit",
    "UnitOfWork",
    "UserRepo",
]


class StoreError(Exception):
    """The store could not complete the operation (unreachable, timeout, conflict)."""


class StoreConflict(StoreError):
    """A concurrent transaction won a conflict (deadlock, serialisation failure, lock
    timeout). Nothing was committed; running the unit of work again may succeed."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit event as stored (DESIGN §7). Token hashes only, never tokens."""

    event: str
    at: float
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredAudit:
    """An audit row as stored: its id, record and chain link (tamper evidence)."""

    id: int
    record: AuditRecord
    chain_hash: str | None


@dataclass(frozen=True, slots=True)
class SealedKey:
    kid: str
    alg: str
    state: str
    sealed_private: str
    created_at: float
    changed_at: float


class ClientRepo(Protocol):
    async def add(self, client: Client) -> None: ...
    async def get(self, client_id: str) -> Client | None: ...
    async def all(self) -> list[Client]: ...


class UserRepo(Protocol):
    async def add(self, user: User) -> None:
        """Raises ``StoreError`` if the username is taken in the tenant."""

    async def get(self, user_id: str) -> User | None: ...
    async def by_username(self, tenant_id: str, username: str) -> User | None: ...


class SessionRepo(Protocol):
    async def add(self, session: Session, *, browser_handle_hash: str | None) -> None: ...
    async def get(self, sid: str) -> Session | None: ...
    async def by_browser_handle(self, handle_hash: str) -> Session | None: ...
    async def touch(self, sid: str, at: float) -> None: ...

    async def revoke(self, sid: str, *, at: float, reason: str) -> bool:
        """Mark revoked. True if this call revoked it; False if already revoked/absent."""

    async def bump_version(self, sid: str) -> int | None:
        """Increment ``sv`` atomically; return the new version (None if no such session)."""

    async def active_for_user(self, user_id: str) -> list[Session]: ...


class CodeRepo(Protocol):
    async def add(self, code: AuthorizationCode) -> None: ...

    async def consume(self, code_hash: str, *, at: float) -> tuple[AuthorizationCode, bool] | None:
        """Mark the code used. Returns (code, first_use); first_use is False on a replay."""

    async def attach_family(self, code_hash: str, family_id: str) -> None: ...

    async def prune(self, before: float) -> int:
        """Delete codes that expired before ``before``; returns how many."""


class RefreshRepo(Protocol):
    async def add_family(self, family: RefreshFamily) -> None: ...
    async def get_family(self, family_id: str) -> RefreshFamily | None: ...
    async def add_token(self, token: RefreshToken) -> None: ...
    async def get_token(self, token_hash: str) -> RefreshToken | None: ...

    async def rotate(self, token_hash: str, *, successor_hash: str, at: float) -> bool:
        """Mark the token rotated iff it is not yet. Exactly one concurrent caller wins."""

    async def revoke_family(self, family_id: str, *, at: float, reason: str) -> bool:
        """True if this call revoked the family."""

    async def families_for_session(self, sid: str) -> list[RefreshFamily]: ...


class RevocationLog(Protocol):
    async def append(self, event: RevocationEvent) -> int:
        """Append to the outbox; returns the event's sequence number (strictly increasing)."""

    async def is_token_revoked(self, jti: str) -> bool: ...

    async def since(self, seq: int, *, limit: int) -> list[RevocationEvent]:
        """Events with sequence > ``seq``, in order."""

    async def last_seq(self) -> int: ...

    async def prune(self, before: float) -> int:
        """Delete events that stopped mattering before ``before`` (never the newest one,
        so sequence numbers are never reused); returns how many."""

    async def live(self, now: float) -> tuple[int, list[RevocationEvent]]:
        """A snapshot: the last sequence number and every event not yet expired at
        ``now`` (up to that sequence), read consistently."""


class AuditRepo(Protocol):
    async def append(self, records: Sequence[AuditRecord]) -> None:
        """Append in order, each row hash-chained to the previous one
        (``core.audit_chain``); concurrent appenders are serialised."""

    async def scan(self, *, after_id: int = 0, limit: int = 1000) -> list[StoredAudit]:
        """Rows with id > ``after_id``, oldest first."""

    async def query(self, *, event: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Newest first."""


class KeyRepo(Protocol):
    async def all(self) -> list[SealedKey]:
        """In a write unit of work, also holds the ring until commit: concurrent
        read-modify-write units (bootstrap, rotation) run one after the other."""

    async def add(self, key: SealedKey) -> None: ...
    async def set_state(self, kid: str, state: str, *, at: float) -> None: ...


class UnitOfWork(Protocol):
    clients: ClientRepo
    users: UserRepo
    sessions: SessionRepo
    codes: CodeRepo
    refresh: RefreshRepo
    revocations: RevocationLog
    audit: AuditRepo
    keys: KeyRepo


class Store(Protocol):
    def unit_of_work(self, *, read_only: bool = False) -> AbstractAsyncContextManager[UnitOfWork]:
        """A transaction: commits when the block exits normally, rolls back on error."""

    def on_outbox_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every commit that appended revocation events."""

    async def close(self) -> None: ...
