"""Alembic migrations for the SQL store, and ``upgrade_database`` to apply them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["upgrade_database"]

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
