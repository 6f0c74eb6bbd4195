"""``tessera db upgrade``."""

from __future__ import annotations

import click

from tessera.cli._errors import explained, load_settings
from tessera.store.migrations import upgrade_database

__all__ = ["db"]


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply all migrations to the configured database."""
    settings = load_settings()
    with explained(settings):
        if settings.is_sqlite:
            settings.prepare_data_dir()
        upgrade_database(settings.resolved_database_url)
    click.echo("database is at the latest schema")
