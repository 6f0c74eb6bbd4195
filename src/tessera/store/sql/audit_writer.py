"""The audit log's group commit on a SQLite file, on the event loop without waiting —
and the outbox events that commit with audit records when a transaction reads nothing
(``SqlStore.append_outbox``: an access-token revocation), and any other short write
transaction given as a function (``transact``: the verifiers' reports,
``SqlStore.record_reports``).

Through SQLAlchemy and aiosqlite a batch cost a thread hop per statement (~1.2 ms of CPU
for a batch of 8 under load). Run as one function in a worker thread it cost one hop,
and that hop was still the largest stage of a token request after the HTTP server: the
thread had to win the GIL from the busy event loop once per ``sqlite3`` call (up to the
5 ms switch interval each), holding SQLite's write lock all the while, so the other
worker's commits queued behind it. With the CPU overcommitted, token requests through
such a thread waited 130–154 ms at p99, through the loop 26–45 ms, and cost a fifth to a
quarter more CPU (``docs/performance.md``, seventh pass).

So the transaction runs on the event loop, and never waits there:

- ``BEGIN IMMEDIATE`` with SQLite's busy handler off: when another process (or the
  engine's pool) holds the write lock it fails at once, and the caller retries after an
  ``asyncio.sleep`` (0.2 ms doubling to 1 ms) up to ``busy_deadline``;
- a commit writes pages to the WAL in the OS's cache and does not sync
  (``journal_mode=WAL``, ``synchronous=NORMAL``: a committed transaction survives a
  crash of the process, as before), and checkpoints run in their own thread
  (``checkpoint.py``; this connection keeps only the backstop past 10,000 pages);
- the connection is opened (``journal_mode`` may wait for another connection opening
  the WAL index) in a worker thread.

What the loop spends is the work itself: ~0.15–0.2 ms for a batch of 5 here, p99
~0.5 ms (a few ms when the CPU is overcommitted and the process is descheduled
mid-write). The transaction is the same as ``SqlAuditRepo.append``'s: ``BEGIN IMMEDIATE``
(so the chain head read is the head the rows extend), the head, the rows with their
chain links, commit; the JSON of ``fields`` is the document the SQLAlchemy ``JSON``
column writes, without its spaces (``stored_fields``). Writers of this process queue on
the store's write lock before calling (one at a time); nothing awaits between ``BEGIN``
and ``COMMIT``, so a cancelled caller leaves either nothing or a whole committed
transaction.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from tessera.core.audit_chain import GENESIS, chain_link, stored_fields
from tessera.core.revocation import RevocationEvent
from tessera.store.ports import AuditRecord, StoreConflict, StoreError
from tessera.store.sql.checkpoint import WAL_BACKSTOP_PAGES
from tessera.store.sql.logs import SQLITE_APPEND, SQLITE_AUDIT_HEAD, SQLITE_AUDIT_INSERT
from tessera.store.sql.private_connection import PrivateConnection

__all__ = ["SqliteAuditWriter"]

_T = TypeVar("_T")

FIRST_RETRY = 0.0002
"""Seconds before the first retry of a ``BEGIN IMMEDIATE`` another writer refused."""
LONGEST_RETRY = 0.001
"""The retry interval doubles up to this."""


class SqliteAuditWriter(PrivateConnection):
    """Write transactions on a connection of its own, on the event loop (module
    docstring). A transaction holds the connection's lock from ``BEGIN`` to its end, as
    ``close`` and the opening thread do."""

    def __init__(self, database: str, *, busy_deadline: float = 10.0) -> None:
        super().__init__(database)
        self._busy_deadline = busy_deadline

    def _open(self) -> sqlite3.Connection:
        """The connection, opened if need be (blocking: ``_begin_when_free`` runs it in a
        worker thread)."""
        with self._lock:
            if self._conn is None:
                conn = sqlite3.connect(Path(self.database), isolation_level=None,
                                       check_same_thread=False, timeout=self._busy_deadline)
                # the journal-mode pragma can meet another connection opening the WAL
                # index (SQLITE_BUSY): SQLite's busy handler waits that out here, in the
                # opening thread; afterwards it is off (``_begin`` never waits)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=0")
                conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
                self._conn = conn
            return self._conn

    @staticmethod
    def _begin(conn: sqlite3.Connection) -> bool:
        """``BEGIN IMMEDIATE``; False if another writer holds the lock."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise
        return True

    async def write(self, records: Sequence[AuditRecord],
                    events: Sequence[RevocationEvent] = (), *,
                    before_commit: Callable[[list[int]], None] | None = None) -> list[int]:
        """Append ``records`` to the chained audit table and ``events`` to the outbox in
        one transaction; returns the events' seqs, in order. ``before_commit`` gets them
        just before the commit. Raises ``StoreError``."""
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
                                 "fields": stored_fields(r.fields), "chain_hash": previous})
                conn.executemany(SQLITE_AUDIT_INSERT, rows)
            seqs = [int(conn.execute(SQLITE_APPEND, {
                "kind": e.kind, "key": e.key, "at": e.at, "expires_at": e.expires_at,
                "data": json.dumps(e.data)}).fetchone()[0]) for e in events]
            if before_commit is not None:
                before_commit(seqs)
            return seqs

        return await self.transact(write)

    async def transact(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``body`` in one write transaction on this writer's connection and commit;
        rolled back if it raises. ``body`` runs on the event loop: it must be short and
        must not wait. Raises ``StoreError`` (``StoreConflict`` if other writers held
        the write lock past the busy deadline)."""
        try:
            conn = await self._begin_when_free()
            try:
                try:
                    result = body(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                self._lock.release()
        except sqlite3.Error as exc:
            self.close()  # a fresh connection next time
            raise StoreError(f"database error: {type(exc).__name__}") from exc

    async def _begin_when_free(self) -> sqlite3.Connection:
        """The connection in a write transaction, holding its lock (a store used from
        two threads' loops, as tests serving in a thread do, must not interleave
        transactions on one connection). Neither lock is waited for on the loop: while
        another writer holds one, sleep and try again."""
        delay, deadline = FIRST_RETRY, time.monotonic() + self._busy_deadline
        while True:
            if self._conn is None:
                await asyncio.to_thread(self._open)
            if self._lock.acquire(blocking=False):
                try:
                    conn = self._conn
                    if conn is not None and self._begin(conn):
                        return conn
                except BaseException:
                    self._lock.release()
                    raise
                self._lock.release()
            if time.monotonic() >= deadline:
                raise StoreConflict("transaction conflict: database is locked")
            await asyncio.sleep(delay)
            delay = min(delay * 2, LONGEST_RETRY)
