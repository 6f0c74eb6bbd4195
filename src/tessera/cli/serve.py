"""``tessera serve``: migrate (SQLite), make sure keys exist, run uvicorn workers."""

from __future__ import annotations

import asyncio
import os

import click

from tessera import httpserver
from tessera.core.clock import SystemClock
from tessera.identity.compose import key_manager_for
from tessera.observability.logging import configure_logging
from tessera.settings import Settings
from tessera.store.migrations import upgrade_database
from tessera.store.sql import create_store

__all__ = ["serve"]


async def _bootstrap_keys(settings: Settings) -> None:
    store = create_store(settings.resolved_database_url)
    try:
        await key_manager_for(settings, store, SystemClock()).bootstrap()
    finally:
        await store.close()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Worker processes (use the number of cores for throughput).")
@click.option("--issuer", default=None, help="Issuer URL (default: http://HOST:PORT).")
def serve(host: str, port: int, workers: int, issuer: str | None) -> None:
    """Run the identity service."""
    os.environ["TESSERA_SERVER__WORKERS"] = str(workers)  # the workers read it too
    if issuer:
        os.environ["TESSERA_ISSUER"] = issuer
    elif "TESSERA_ISSUER" not in os.environ:
        os.environ["TESSERA_ISSUER"] = f"http://{host}:{port}"
    settings = Settings()
    if settings.is_sqlite:
        settings.prepare_data_dir()
        upgrade_database(settings.resolved_database_url)
    asyncio.run(_bootstrap_keys(settings))  # before workers fork: exactly one key set
    configure_logging()
    click.echo(f"tessera: issuer {settings.issuer}, store {settings.resolved_database_url}, "
               f"{workers} worker(s)", err=True)
    httpserver.run("tessera.identity.app:create_app", limits=settings.server, factory=True,
                   host=host, port=port, workers=workers, access_log=False,
                   log_level="warning", server_header=False,
                   # open event-feed streams must not hold a shutdown forever: followers
                   # reconnect (to another worker) and resume from their cursor
                   timeout_graceful_shutdown=3)
