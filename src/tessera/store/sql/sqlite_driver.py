"""SQLite for SQLAlchemy's asyncio engine with one thread hop per statement.

SQLAlchemy drives SQLite through aiosqlite, which runs each call to the ``sqlite3``
connection in that connection's own thread: a statement's cursor, its ``execute``, its
``fetchall`` and the cursor's ``close`` were four hops to that thread and back (each a
queue put, a thread wake-up and a loop wake-up: ~70–100 µs of CPU here). A one-statement
unit of work took nine of them (~0.7 ms of CPU on an idle loop), and a revocation's
unit of work, six statements, ~3 ms — most of a revocation's path to the verifiers
(bench/propagation.py).

This module keeps aiosqlite and its thread (``sqlite3`` calls never run on the event
loop, so a long read or a checkpoint's fsync blocks no request) and SQLAlchemy's own
aiosqlite adapter for everything else (connections, transactions, server-side
cursors); only the plain cursor differs: its ``execute`` runs cursor, execute, fetch and
close as one function in the connection's thread (``aiosqlite.Connection._execute``, the
same private entry point SQLAlchemy's adapter already uses for ``isolation_level``),
and keeps the description, row count and last row id it returned. Results are the rows
``sqlite3`` returns, as before.

Used by ``create_store`` for every SQLite URL (``module=``: the engine's DBAPI; the URL
stays ``sqlite+aiosqlite``).
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

__all__ = ["dbapi"]

_Result = tuple[Any, list[Any] | None, int, int | None]
"""description, rows (None without a description), rowcount, lastrowid."""


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Result:
    """In the connection's thread: one statement, start to finish."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    """A DBAPI cursor whose statements each cost one hop to the connection's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        # no driver cursor: each statement opens and closes its own in the thread
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # nothing is open between statements

    def close(self) -> None:
        self._rows.clear()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._statement(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any,
                                 seq_of_parameters: Sequence[Any]) -> Any:
        await self._statement(operation, seq_of_parameters, many=True)

    async def _statement(self, operation: Any, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        in_thread: Any = connection._execute  # untyped in aiosqlite
        async with self._adapt_connection._execute_mutex:
            description, rows, rowcount, lastrowid = await in_thread(
                _run, connection._conn, operation, parameters, many)
        self._description = description
        self._rowcount = rowcount
        self._lastrowid = lastrowid
        self._rows = collections.deque(rows or ())

    def nextset(self) -> None:
        return None  # sqlite3 has one result set per statement

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = _Cursor


class _Dbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _Connection(self, adapted._connection)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DBAPI module for ``create_async_engine(..., module=dbapi())``."""
    return _Dbapi(aiosqlite, sqlite3)

