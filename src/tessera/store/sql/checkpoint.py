"""SQLite's WAL checkpoints, off the commit path.

By default SQLite checkpoints inside the commit that grows the WAL past 1,000 pages: that
commit copies the WAL into the database file and syncs both, 3–7 ms here, while it holds
the write lock. Every revocation and audit batch queued behind it waits, and at a few
hundred commits a second that was the tail (p99) of a revocation's commit. Measured
(3,000 two-row commits on one connection): p99.9 4.9–5.2 ms and nine commits over 1 ms
with SQLite's automatic checkpoints, 0.43–0.44 ms and none with a checkpoint every 0.2 s
from another connection.

So a serving process runs ``checkpoint_wal``: a ``PASSIVE`` checkpoint every
``interval`` on a connection of its own, in a worker thread. ``PASSIVE`` never waits for
a reader or a writer: it copies what it can, and a commit meanwhile appends to the WAL
as usual. Every connection of the store still checkpoints by itself past
``WAL_BACKSTOP_PAGES`` (~40 MB of WAL with 4 KiB pages): a backstop for a process that
runs no checkpointer (the CLI) or one that cannot keep up, never the usual path.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from tessera.store.sql.private_connection import PrivateConnection

__all__ = ["WAL_BACKSTOP_PAGES", "checkpoint_wal"]

WAL_BACKSTOP_PAGES = 10_000
"""``PRAGMA wal_autocheckpoint`` of every connection of a store on a SQLite file."""

_log = logging.getLogger("tessera.store")


class _Checkpointer(PrivateConnection):
    """A private read-write connection (opened on first use, reopened after an error)
    that runs one ``PASSIVE`` checkpoint per ``run``."""

    def run(self) -> tuple[int, int, int]:
        """(busy, WAL frames, frames checkpointed), as ``PRAGMA wal_checkpoint`` says.
        Raises ``sqlite3.Error``."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = sqlite3.connect(Path(self.database), timeout=0,
                                                 isolation_level=None,
                                                 check_same_thread=False)
                row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                return int(row[0]), int(row[1]), int(row[2])
            except sqlite3.Error:
                self._close()
                raise


async def checkpoint_wal(database: str, *, interval: float) -> None:
    """Checkpoint ``database``'s WAL every ``interval`` seconds until cancelled. A
    failed checkpoint is logged once (until one succeeds again) and tried again at the
    next interval; meanwhile the backstop keeps the WAL bounded."""
    checkpointer = _Checkpointer(database)
    failing = False
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(checkpointer.run)
            except Exception as exc:  # sqlite3.Error, or a bug: never end the loop
                if not failing:
                    _log.warning("WAL checkpoint failed (%s); retrying every %.1f s",
                                 type(exc).__name__, interval)
                failing = True
            else:
                if failing:
                    _log.info("WAL checkpoint works again")
                failing = False
    finally:
        checkpointer.close()
