"""SQLAlchemy 2 adapter of the store ports: SQLite (embedded default) and PostgreSQL."""

from tessera import _extras

_extras.require("server", "the SQL store")  # one clear line without the extra
# ruff: noqa: E402 (the check above runs before the imports that would fail)

from tessera.store.sql.engine import SqlStore, create_store

__all__ = ["SqlStore", "create_store"]
