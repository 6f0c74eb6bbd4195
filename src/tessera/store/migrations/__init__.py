"""Alembic migrations for the SQL store, and ``upgrade_database`` to apply them."""

from __future__ import annotations

from tessera import _extras

_extras.require("server", "the database migrations")  # one clear line without the extra
# ruff: noqa: E402 (the check above runs before the imports that would fail)

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["database_revision", "head_revision", "known_revision", "upgrade_database"]

_HERE = Path(__file__).resolve().parent


def _config(url: str, schema: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["tessera_url"] = url
    config.attributes["tessera_schema"] = schema
    return config


def upgrade_database(url: str, *, schema: str | None = None, revision: str = "head") -> None:
    """Apply migrations up to ``revision``. Synchronous: call it outside a running loop
    (or through ``asyncio.to_thread``)."""
    command.upgrade(_config(url, schema), revision)


def head_revision() -> str:
    """The revision this code expects the database at (the newest migration)."""
    head = ScriptDirectory.from_config(_config("", None)).get_current_head()
    assert head is not None, "no migrations"
    return head


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations (a newer release's is not)."""
    scripts = ScriptDirectory.from_config(_config("", None))
    return any(script.revision == revision for script in scripts.walk_revisions())


async def database_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; ``None`` if it was never migrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision())
