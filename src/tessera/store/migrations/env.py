"""Alembic environment: runs migrations on the async engine the store uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from tessera.store.sql.engine import create_store
from tessera.store.sql.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    url: str = config.attributes["tessera_url"]
    schema: str | None = config.attributes.get("tessera_schema")
    # Migrations run beside live workers and outside the store's unit of work (which
    # waits for SQLite's lock in asyncio): let SQLite itself wait here.
    store = create_store(url, schema=schema, sqlite_busy_timeout_ms=10_000)
    try:
        async with store.engine.connect() as conn:
            if schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                await conn.commit()
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await store.close()


asyncio.run(_main())
