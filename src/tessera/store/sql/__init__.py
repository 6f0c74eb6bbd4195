"""SQLAlchemy 2 adapter of the store ports: SQLite (embedded default) and PostgreSQL."""

from tessera.store.sql.engine import SqlStore, create_store

__all__ = ["SqlStore", "create_store"]
