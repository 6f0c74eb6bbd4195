"""A ``sqlite3`` connection that one component keeps for itself, beside the engine's pool
(the audit writer's transactions, the WAL checkpointer), and the SQL it runs:
the store's own SQLAlchemy statements, compiled once for SQLite (``sqlite_sql``), so the
two paths cannot drift apart."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import sqlite

__all__ = ["PrivateConnection", "sqlite_sql"]

_NAMED = sqlite.dialect(paramstyle="named")


def sqlite_sql(statement: Any, *, columns: Sequence[str] | None = None,
               literal: bool = False) -> str:
    """``statement`` as SQL for ``sqlite3`` with named parameters (a dict per row):
    ``columns``, the parameters of an ``INSERT`` (default: every column); ``literal``,
    values written in (a ``LIMIT``)."""
    return str(statement.compile(dialect=_NAMED, column_keys=columns,
                                 compile_kwargs={"literal_binds": literal}))


class PrivateConnection:
    """Holds the connection (``_conn``, opened by the subclass on first use) and a lock
    that its calls take, so a call in a worker thread and ``close`` never use it at once.
    A subclass closes it after an error (``_close``, under the lock): the next call opens
    a fresh one."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
