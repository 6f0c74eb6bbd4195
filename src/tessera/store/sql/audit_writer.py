"""The audit log's group commit on SQLite in one thread hop — and the outbox events that
commit with audit records when a transaction reads nothing (``SqlStore.append_outbox``:
an access-token revocation), and any other short write transaction given as a function
(``transact``: the verifiers' reports, ``SqlStore.record_reports``).

Through SQLAlchemy and aiosqlite a batch costs a thread hop per statement — check-out,
``BEGIN IMMEDIATE``, the chain head, the insert, commit, check-in — ~1.2 ms of CPU for a
batch of 8 under load, the largest stage of a token request after the HTTP server.
Here the whole transaction is one function run in a worker thread with the standard
``sqlite3`` module on a connection of its own: ~0.2 ms for the same batch.

The transaction is the same as ``SqlAuditRepo.append``'s: ``BEGIN IMMEDIATE`` (the
write lock, so the chain head read is the head the rows extend), the head, the rows with
their chain links, commit; the JSON of ``fields`` is what the SQLAlchemy ``JSON`` column
writes (``json.dumps``). Writers of this process queue on the store's write lock before
calling ``write`` (one at a time: the connection is never used concurrently); other
processes' writers are waited out by retrying ``BEGIN IMMEDIATE`` with short sleeps, in
this thread, up to ``busy_deadline`` (as ``SqlStore._begin`` does in the event loop).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from tessera.core.audit_chain import GENESIS, chain_link
from tessera.core.revocation import RevocationEvent
from tessera.store.ports import AuditRecord, StoreConflict, StoreError
from tessera.store.sql.checkpoint import WAL_BACKSTOP_PAGES
from tessera.store.sql.logs import SQLITE_APPEND, SQLITE_AUDIT_HEAD, SQLITE_AUDIT_INSERT
from tessera.store.sql.private_connection import PrivateConnection

__all__ = ["SqliteAuditWriter"]

_T = TypeVar("_T")



class SqliteAuditWriter(PrivateConnection):
    """One ``transact`` at a time on the connection (its lock), even if a cancelled
    caller left the store's asyncio write lock while its thread was still writing."""

    def __init__(self, database: str, *, busy_deadline: float = 10.0) -> None:
        super().__init__(database)
        self._busy_deadline = busy_deadline

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(Path(self.database), isolation_level=None,
                                   check_same_thread=False, timeout=self._busy_deadline)
            # the journal-mode pragma can meet another connection opening the WAL
            # index (SQLITE_BUSY): SQLite's busy handler waits that out; ``_begin``
            # waits out writers itself, in short sleeps, so the handler is off after
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
            self._conn = conn
        return self._conn

    def _begin(self, conn: sqlite3.Connection) -> None:
        delay, waited = 0.0002, 0.0
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY,
                                                       sqlite3.SQLITE_LOCKED):
                    raise
                if waited >= self._busy_deadline:
                    raise StoreConflict("transaction conflict: database is locked") from None
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.001)

    def write(self, records: Sequence[AuditRecord],
              events: Sequence[RevocationEvent] = (), *,
              before_commit: Callable[[list[int]], None] | None = None) -> list[int]:
        """Append ``records`` to the chained audit table and ``events`` to the outbox in
        one transaction (blocking: run it in a worker thread); returns the events' seqs,
        in order. ``before_commit`` gets them just before the commit. Raises
        ``StoreError``."""
        if not records and not events:
            return []

        def write(conn: sqlite3.Connection) -> list[int]:
            if records:
                row = conn.execute(SQLITE_AUDIT_HEAD).fetchone()
                previous = row[0] if row is not None and row[0] else GENESIS
                rows = []
                for r in records:
                    previous = chain_link(previous, r.event, r.at, r.fields)
                    rows.append({"event": r.event, "at": r.at,
                                 "fields": json.dumps(r.fields), "chain_hash": previous})
                conn.executemany(SQLITE_AUDIT_INSERT, rows)
            seqs = [int(conn.execute(SQLITE_APPEND, {
                "kind": e.kind, "key": e.key, "at": e.at, "expires_at": e.expires_at,
                "data": json.dumps(e.data)}).fetchone()[0]) for e in events]
            if before_commit is not None:
                before_commit(seqs)
            return seqs

        return self.transact(write)

    def transact(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``body`` in one write transaction on this writer's connection and commit
        (blocking: run it in a worker thread); rolled back if it raises. Raises
        ``StoreError`` (``StoreConflict`` if another process held the write lock past
        the busy deadline)."""
        with self._lock:
            try:
                conn = self._connection()
                self._begin(conn)
                try:
                    result = body(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except StoreError:
                raise
            except sqlite3.Error as exc:
                self._close()  # a fresh connection next time
                raise StoreError(f"database error: {type(exc).__name__}") from exc
