"""Engine setup and the unit of work for SQLite (default) and PostgreSQL (asyncpg).

SQLite runs in WAL mode with ``BEGIN IMMEDIATE`` for write transactions, so concurrent
writers queue on the lock instead of failing on upgrade; read-only units use a deferred
``BEGIN`` and never block writers. Writers of one process queue on an ``asyncio.Lock``
(they would only fight over the file lock); writers of other processes are waited for by
retrying ``BEGIN IMMEDIATE`` with short asyncio sleeps: SQLite's own busy handler sleeps
in a thread for up to 100 ms at a time, which made p99 latency under two workers.

Outbox wake-ups: every commit that appended outbox rows calls this process's
``on_outbox_commit`` listeners, and hands the events themselves to its
``hand_off_outbox`` listeners (the relays publish them without reading them back). On
PostgreSQL the same commit also sends ``pg_notify`` on the store's channel, delivered
with the commit, and ``listen_outbox`` turns those notifications — from every process:
the CLI, other workers, other instances — into the same wake-ups, so relays need not
poll for them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, make_url, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tessera.core.revocation import RevocationEvent
from tessera.store.ports import (
    AuditRecord,
    Completion,
    OutboxHandoff,
    RefreshRead,
    RefreshRotation,
    RefreshRotations,
    RefreshSnapshot,
    StoreConflict,
    StoreError,
    UnitOfWork,
    VerifierReport,
)
from tessera.store.sql import sqlite_driver
from tessera.store.sql.audit_writer import SqliteAuditWriter
from tessera.store.sql.checkpoint import WAL_BACKSTOP_PAGES, checkpoint_wal
from tessera.store.sql.group_commit import GroupCommit
from tessera.store.sql.logs import with_seqs
from tessera.store.sql.registry import record_sqlite
from tessera.store.sql.repos import SqlUnitOfWork
from tessera.store.sql.rotations import (
    PostgresRefreshRotations,
    SqliteRefreshRotations,
    read_snapshot_pg,
    rotate_many,
    rotate_many_in,
)

__all__ = ["SqlStore", "async_url", "create_store", "secure_sqlite_files"]

_log = logging.getLogger("tessera.store")
_T = TypeVar("_T")
_READ_ONLY = "tessera_read_only"
_NOTIFY = text("SELECT pg_notify(:channel, '')")


def async_url(url: str) -> str:
    """Map plain URLs to their asyncio drivers (``sqlite`` → aiosqlite, ``postgresql`` →
    asyncpg) so users can write the URL they know."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:"):]
    for prefix in ("postgresql:", "postgres:", "postgresql+psycopg:", "postgresql+psycopg2:"):
        if url.startswith(prefix):
            return "postgresql+asyncpg:" + url[len(prefix):]
    return url


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # 0 by default: the unit of work waits for the write lock in asyncio (_begin)
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")  # checkpoint.py
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


_CONFLICT_SQLSTATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout)
})


def _driver_error(exc: DBAPIError) -> StoreError:
    """Tell a lost conflict (worth retrying) from an unreachable or failing database."""
    orig = exc.orig
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if (getattr(orig, "sqlstate", None) in _CONFLICT_SQLSTATES
            or (sqlite_code is not None and sqlite_code & 0xFF == sqlite3.SQLITE_BUSY)):
        return StoreConflict(f"transaction conflict: {orig}")
    if isinstance(exc, (OperationalError, InterfaceError)):
        return StoreError(f"database unavailable: {type(exc).__name__}")
    return StoreError(f"database error: {type(exc).__name__}")


@contextmanager
def _store_errors() -> Iterator[None]:
    """Driver and connection failures as ``StoreError`` (the port's promise), from
    SQLAlchemy or from asyncpg used directly (the refresh hot path)."""
    try:
        yield
    except DBAPIError as exc:
        raise _driver_error(exc) from exc
    except (OSError, TimeoutError) as exc:
        raise StoreError(f"database unavailable: {type(exc).__name__}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"database error: {type(exc).__name__}") from exc
    except Exception as exc:
        error = _asyncpg_error(exc)
        if error is None:
            raise
        raise error from exc


def _asyncpg_error(exc: Exception) -> StoreError | None:
    """``exc`` as a ``StoreError`` when asyncpg raised it, else None."""
    module = type(exc).__module__
    if not module.startswith("asyncpg"):
        return None
    if getattr(exc, "sqlstate", None) in _CONFLICT_SQLSTATES:
        return StoreConflict(f"transaction conflict: {type(exc).__name__}")
    if _connection_lost(exc):
        return StoreError(f"database unavailable: {type(exc).__name__}")
    return StoreError(f"database error: {type(exc).__name__}")


def _connection_lost(exc: BaseException) -> bool:
    """asyncpg lost its connection: it was closed, or the server ended the session
    (SQLSTATE class 08, connection exception; 57P01-57P03, shutdown)."""
    if isinstance(exc, ConnectionError):
        return True
    if not type(exc).__module__.startswith("asyncpg"):
        return False
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return (type(exc).__name__ in ("ConnectionDoesNotExistError", "InterfaceError")
            or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03"))


async def _once_more(run: Callable[[], Awaitable[_T]]) -> _T:
    """``run``; once more if it failed on a connection found dead (SQLAlchemy's pool has
    then dropped every connection as old as it; asyncpg's drops the one that failed:
    the second attempt gets a live or fresh one)."""
    try:
        return await run()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    except Exception as exc:
        if not _connection_lost(exc):
            raise
    return await run()


async def _keep_session(_conn: Any) -> None:
    """The hot pool's reset: nothing to undo (see ``SqlStore._hot_pool``)."""


def _is_busy(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SqlStore:
    """The ``Store`` port over one SQLAlchemy async engine."""

    def __init__(self, engine: AsyncEngine, *, busy_deadline: float = 10.0,
                 schema: str | None = None) -> None:
        self.engine = engine
        self._outbox_listeners: list[Callable[[], None]] = []
        self._handoffs: list[OutboxHandoff] = []
        self._sqlite = engine.dialect.name == "sqlite"
        self.outbox_channel: str | None = None if self._sqlite else (
            f"tessera_outbox_{schema}" if schema else "tessera_outbox")[:63]
        """PostgreSQL: the channel outbox commits notify (per schema); None on SQLite."""
        self._write_lock = asyncio.Lock() if self._sqlite else None
        self.rotations: GroupCommit[RefreshRotation, bool] = GroupCommit(self._rotate_many)
        """Refresh rotations of concurrent requests share one write transaction."""
        self._busy_deadline = busy_deadline
        database = engine.url.database if self._sqlite else None
        self._audit_writer = (
            SqliteAuditWriter(database, busy_deadline=busy_deadline)
            if database and database != ":memory:" and not database.startswith("file:")
            else None)
        """SQLite in a file: the audit group commit on the event loop (``append_audit``)."""
        self._schema = schema
        self._own_heads: collections.deque[int] = collections.deque(maxlen=_OWN_HEADS)
        """The last revocation seqs this process committed, or is committing (their
        listeners are woken with the commit; ``watch_outbox`` need not wake them again
        for them). More than the last one: the watch may read a head of this process
        after the next commit has already claimed its seq."""
        self._hot: Any = None
        self._hot_lock = asyncio.Lock()

    async def _hot_pool(self) -> Any:
        """PostgreSQL: the refresh hot path's own asyncpg pool (the engine's driver,
        without SQLAlchemy's execution and result layers: ``rotations.CompiledStatement``).
        Each statement is its own transaction (no BEGIN/COMMIT round trips); no ping on
        checkout and no reset query on return (a round trip each; the two statements
        leave no session state: their advisory lock is transaction-scoped). A
        connection found dead is retried once on a fresh one (``_once_more``): the read
        is idempotent, and so is a rotation (it rotates only an unrotated token; a retry
        that finds its first attempt committed returns False, and the grant answers from
        the general path with the same successor)."""
        if self._hot is None:
            async with self._hot_lock:
                if self._hot is None:
                    import asyncpg  # type: ignore[import-untyped]

                    _args, connect = self.engine.dialect.create_connect_args(self.engine.url)
                    if self._schema:
                        connect["server_settings"] = {"search_path": self._schema}
                    self._hot = await asyncpg.create_pool(
                        min_size=0, max_size=20, reset=_keep_session, **connect)
        return self._hot

    async def _begin(self, conn: AsyncConnection) -> None:
        """Start the transaction; on SQLite, wait out another process's write lock."""
        if not self._sqlite:
            await conn.begin()
            return
        delay, waited = 0.0002, 0.0
        while True:
            try:
                await conn.begin()
                return
            except OperationalError as exc:
                if not _is_busy(exc) or waited >= self._busy_deadline:
                    raise
                await conn.rollback()
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.001)

    def on_outbox_commit(self, listener: Callable[[], None]) -> None:
        self._outbox_listeners.append(listener)

    def hand_off_outbox(self, listener: OutboxHandoff) -> None:
        self._handoffs.append(listener)

    async def watch_outbox(self, listener: Callable[[], None], *,
                          connected: Callable[[bool], None] | None = None,
                          interval: float = 0.01) -> None:
        """SQLite in a file: call ``listener`` when another commit (any process: the
        CLI, other workers) appended to the outbox tables — ``revocation_events`` or
        ``signal_events`` — checked every ``interval`` s, so those commits wake the
        relays within ~``interval`` instead of their poll.

        Two steps, both cheap, on a private read-only ``sqlite3`` connection in this
        thread (no thread hop): ``PRAGMA data_version``, which changes with every commit
        of any other connection (SQLite's own change counter: exact, unlike file sizes
        and times), and only when it changed, one read of the two tables' heads.
        Commits that touch neither table — the audit log's group commits, token
        issuance — wake nobody, and neither does this process's own last outbox commit:
        its listeners were woken with it (``on_outbox_commit``, ``hand_off_outbox``).
        A commit of another process in between is still seen: the relays find the gap
        before the handed events and read it, the fan-out reads it with its wake-up.

        ``connected(True)`` while the watch works; ``connected(False)`` when a read
        fails (which also wakes the listener once: never a missed event) and when the
        watch ends. While it works the relays need not poll (``set_event_driven``).
        Runs until cancelled; returns at once for PostgreSQL or an in-memory
        database."""
        database = self.engine.url.database if self._sqlite else None
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        heads = _OutboxHeads(database)
        working: bool | None = None

        def report(ok: bool) -> None:
            nonlocal working
            if ok != working and connected is not None:
                connected(ok)
            working = ok

        try:
            version, head = heads.version(), heads.read()
            while True:
                report(version is not None and head is not None)
                await asyncio.sleep(interval)
                now = heads.version()
                if now is not None and now == version:
                    continue
                version = now
                current = heads.read() if now is not None else None
                if current is None:  # the watch went blind: wake once, then they poll
                    if head is not None:
                        listener()
                    head = None
                    continue
                if current != head:
                    own = (head is not None and current[1] == head[1]
                           and current[0] in self._own_heads)
                    head = current
                    if not own:
                        listener()
        finally:
            heads.close()
            if working and connected is not None:
                connected(False)

    async def checkpoint_wal(self, *, interval: float = 0.2) -> None:
        """SQLite in a file: checkpoint the WAL every ``interval`` seconds from a
        connection of its own, so that no commit pays for a checkpoint
        (``store.sql.checkpoint``). Runs until cancelled; returns at once for
        PostgreSQL or an in-memory database."""
        if self._audit_writer is not None:  # a file
            await checkpoint_wal(self._audit_writer.database, interval=interval)

    async def listen_outbox(self, listener: Callable[[], None], *,
                            connected: Callable[[bool], None] | None = None,
                            retry: float = 1.0) -> None:
        """PostgreSQL only: call ``listener`` on every outbox commit of any process
        (LISTEN on ``outbox_channel``), from a dedicated connection; reconnect after
        ``retry`` s when it is lost. ``connected(True/False)`` reports whether wake-ups
        flow (when they do not, the relays' poll is all there is). Runs until cancelled;
        returns at once on SQLite."""
        channel = self.outbox_channel
        if channel is None:
            return
        import asyncpg  # the engine's own PostgreSQL driver

        dsn = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        while True:
            try:
                await _listen_once(asyncpg, dsn, channel, listener, connected)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    TimeoutError) as exc:
                _log.warning("outbox LISTEN failed (%s); relays poll meanwhile",
                             type(exc).__name__)
            await asyncio.sleep(retry)

    @asynccontextmanager
    async def unit_of_work(self, *, read_only: bool = False) -> AsyncIterator[UnitOfWork]:
        if self._write_lock is not None and not read_only:
            async with self._write_lock, self._unit(read_only=False) as uow:
                yield uow
        else:
            async with self._unit(read_only=read_only) as uow:
                yield uow

    @asynccontextmanager
    async def refresh_rotations(self) -> AsyncIterator[RefreshRotations]:
        """PostgreSQL: reads on the hot path's pool (``_hot_engine``). SQLite: read-only
        units of work. Writes of both go through ``rotations`` (group commit)."""
        with _store_errors():
            if self._sqlite:
                yield SqliteRefreshRotations(self.unit_of_work, self.rotations)
            else:
                yield PostgresRefreshRotations(self._read_snapshot, self.rotations)

    async def _read_snapshot(self, token_hash: str, risk: RefreshRead | None
                             ) -> RefreshSnapshot | None:
        async def read() -> RefreshSnapshot | None:
            async with (await self._hot_pool()).acquire() as conn:
                return await read_snapshot_pg(conn, token_hash, risk)
        with _store_errors():
            return await _once_more(read)

    async def _rotate_many(self, batch: Sequence[RefreshRotation]) -> list[bool]:
        if self._sqlite:
            async with self.unit_of_work() as uow:
                return await rotate_many_in(uow, batch)

        async def write() -> list[bool]:
            async with (await self._hot_pool()).acquire() as conn:
                return await rotate_many(conn, batch)
        with _store_errors():
            return await _once_more(write)

    @asynccontextmanager
    async def _unit(self, *, read_only: bool) -> AsyncIterator[UnitOfWork]:
        with _store_errors():
            async with self.engine.connect() as conn:
                if read_only:
                    conn = await conn.execution_options(**{_READ_ONLY: True})
                uow = SqlUnitOfWork(conn, read_only=read_only)
                await self._begin(conn)
                try:
                    yield uow
                    appended = uow.outbox_appended
                    if appended and self.outbox_channel is not None:
                        await conn.execute(_NOTIFY, {"channel": self.outbox_channel})
                except BaseException:
                    await conn.rollback()
                    raise
                # stamped before the commit: every commit that ends earlier has lower seqs
                before = self._committing() if appended else []
                own = appended[-1].seq if appended else None
                if own is not None:  # before the commit: the watch may see it first
                    self._own_heads.append(own)
                try:
                    await conn.commit()
                except BaseException:  # committed or not: let the watch wake for it
                    self._forget_own(own)
                    raise
            if appended:
                self._committed(appended, before)

    def _forget_own(self, seq: int | None) -> None:
        """A commit that failed (or may have): the watch wakes the relays for its seq."""
        if seq is not None:
            with contextlib.suppress(ValueError):
                self._own_heads.remove(seq)

    def _committing(self) -> list[Any]:
        """The hand-offs' stamps, taken before an outbox commit."""
        return [h.committing() for h in self._handoffs]

    def _committed(self, appended: Sequence[RevocationEvent], before: list[Any]) -> None:
        """After an outbox commit: the events to the hand-offs, a wake-up to listeners."""
        for handoff, stamp in zip(self._handoffs, before, strict=True):
            handoff.committed(tuple(appended), stamp)
        for listener in self._outbox_listeners:
            listener()

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Commit ``records`` to the audit table in one transaction: the audit log's
        group commit (``AuditSink``). SQLite in a file: on the event loop, without
        waiting there (``SqliteAuditWriter``), behind this process's write lock; else a
        unit of work (``SqlAuditRepo.append``)."""
        if self._audit_writer is not None and self._write_lock is not None:
            async with self._write_lock:
                await self._audit_writer.write(records)
            return
        async with self.unit_of_work() as uow:
            await uow.audit.append(records)

    async def append_outbox(self, records: Sequence[AuditRecord],
                            events: Sequence[RevocationEvent]) -> list[RevocationEvent]:
        """Commit audit ``records`` and outbox ``events`` — a transaction that reads
        nothing — in one transaction; returns the events with their seqs. SQLite in a
        file: as the audit's group commit (``SqliteAuditWriter``), behind this process's
        write lock, with the same hand-offs and wake-ups as a unit of work's commit;
        else a unit of work."""
        if self._audit_writer is None or self._write_lock is None:
            async with self.unit_of_work() as uow:  # hands off and wakes as it commits
                await uow.audit.append(records)
                seqs = await uow.revocations.append_many(events)
            return with_seqs(events, seqs)
        async with self._write_lock:
            before = self._committing() if events else []
            claimed: list[int] = []

            def own(seqs: list[int]) -> None:  # just before the commit
                if seqs:
                    claimed.append(seqs[-1])
                    self._own_heads.append(seqs[-1])

            try:  # nothing awaits between BEGIN and COMMIT: cancelled, nothing was written
                seqs = await self._audit_writer.write(records, events, before_commit=own)
            except BaseException:  # committed or not: let the watch wake for it
                self._forget_own(claimed[0] if claimed else None)
                raise
        appended = with_seqs(events, seqs)
        if appended:
            self._committed(appended, before)
        return appended

    async def record_reports(self, reports: Sequence[VerifierReport],
                             completions: Sequence[Completion]) -> list[Completion]:
        """A completion flush's write (``VerifierRegistry.record``; ``ReportSink``).
        SQLite in a file: as the audit's group commit, behind this process's write lock
        (with a verifier's reports about twice a second, a unit of work of a thread hop
        per statement held the write lock for milliseconds, and every revocation
        arriving meanwhile waited); else a unit of work."""
        if self._audit_writer is None or self._write_lock is None:
            async with self.unit_of_work() as uow:
                return await uow.verifiers.record(reports, completions)
        async with self._write_lock:
            return await self._audit_writer.transact(functools.partial(
                record_sqlite, reports=reports, completions=completions))

    async def close(self) -> None:
        if self._audit_writer is not None:
            self._audit_writer.close()
        if self._hot is not None:
            await self._hot.close()
        await self.engine.dispose()


_OWN_HEADS = 64
"""Own outbox commits the change watch recognises (a few would do: commits are
serialised by the write lock, and the watch reads every 10 ms)."""


async def _listen_once(asyncpg: Any, dsn: str, channel: str, listener: Callable[[], None],
                       connected: Callable[[bool], None] | None) -> None:
    """One LISTEN connection, until it is lost."""
    conn = await asyncpg.connect(dsn, timeout=10)
    lost = asyncio.Event()
    try:
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(channel, lambda *_args: listener())
        if connected is not None:
            connected(True)
        listener()  # what committed before LISTEN took effect
        await lost.wait()
    finally:
        if connected is not None:
            connected(False)
        if not conn.is_closed():
            conn.terminate()


class _OutboxHeads:
    """The newest row ids of the outbox tables, read on a private read-only connection
    (opened on first use, reopened after an error). ``read`` returns None when the read
    failed (the caller then wakes its listeners: better an idle poll than a lost one)."""

    _SQL = ("SELECT (SELECT max(seq) FROM revocation_events), "
            "(SELECT max(id) FROM signal_events)")

    def __init__(self, database: str) -> None:
        self._database = database
        self._conn: sqlite3.Connection | None = None

    def read(self) -> tuple[Any, ...] | None:
        row = self._query(self._SQL)
        return tuple(row) if row is not None else None

    def version(self) -> int | None:
        """``PRAGMA data_version``: changes whenever another connection committed."""
        row = self._query("PRAGMA data_version")
        return int(row[0]) if row is not None else None

    def _query(self, sql: str) -> Any:
        try:
            if self._conn is None:
                uri = Path(self._database).resolve().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
            return self._conn.execute(sql).fetchone()
        except sqlite3.Error:
            self.close()
            return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def secure_sqlite_files(url: str) -> None:
    """Make a SQLite database file readable by its owner only: create it ``0600`` (and its
    directory ``0700``) before SQLite does, and tighten one that exists. SQLite creates
    the ``-wal``, ``-shm`` and ``-journal`` files with the database file's mode; existing
    ones are tightened too. Anything but a file (``:memory:``, URIs) is left alone."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + suffix)
                         for suffix in ("-wal", "-shm", "-journal"))):
        if file.exists() and file.stat().st_mode & 0o077:
            os.chmod(file, 0o600)


def create_store(url: str, *, schema: str | None = None, pool_size: int = 10,
                 sqlite_busy_timeout_ms: int = 0) -> SqlStore:
    """Build a store for ``url``. ``schema`` selects a PostgreSQL schema (search_path). A
    SQLite file is made private first (``secure_sqlite_files``)."""
    url = async_url(url)
    if url.startswith("sqlite"):
        secure_sqlite_files(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
        kwargs["pool_pre_ping"] = True
        if schema:
            kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
    if url.startswith("sqlite"):
        kwargs["module"] = sqlite_driver.dbapi()  # one thread hop per statement
        # every unit of work ends its transaction itself (commit, or rollback on error):
        # the pool's rollback on check-in was one more hop to the connection's thread
        kwargs["pool_reset_on_return"] = None
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
    return SqlStore(engine, schema=schema)
