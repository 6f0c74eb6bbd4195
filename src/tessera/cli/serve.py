"""``tessera serve``: migrate (SQLite), make sure keys exist, run uvicorn workers."""

from __future__ import annotations

import asyncio
import os

import click
import uvicorn

from tessera.cli._common import built_identity
from tessera.cli._errors import explained, load_settings, masked_url
from tessera.observability.logging import configure_logging
from tessera.settings import Settings
from tessera.store.migrations import upgrade_database

__all__ = ["serve"]


async def _bootstrap_keys(settings: Settings) -> None:
    """Create the key ring if there is none, and build the whole identity once: every
    setting, the database, the KEK and the Redis URL fail here, as one line, instead of
    in each worker's startup."""
    identity = await built_identity(settings)  # bootstraps the key ring
    await identity.aclose()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Worker processes (use the number of cores for throughput).")
@click.option("--issuer", default=None, help="Issuer URL (default: http://HOST:PORT).")
def serve(host: str, port: int, workers: int, issuer: str | None) -> None:
    """Run the identity service."""
    if issuer:
        os.environ["TESSERA_ISSUER"] = issuer
    elif "TESSERA_ISSUER" not in os.environ:
        os.environ["TESSERA_ISSUER"] = f"http://{host}:{port}"
    settings = load_settings()
    with explained(settings):
        if settings.is_sqlite:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            upgrade_database(settings.resolved_database_url)
        asyncio.run(_bootstrap_keys(settings))  # before workers fork: exactly one key set
    configure_logging()
    store = masked_url(settings.resolved_database_url)  # never the password in a log
    click.echo(f"tessera: issuer {settings.issuer}, store {store}, {workers} worker(s)",
               err=True)
    uvicorn.run("tessera.identity.app:create_app", factory=True, host=host, port=port,
                workers=workers, access_log=False, log_level="warning",
                proxy_headers=False, server_header=False,
                # open event-feed streams must not hold a shutdown forever: followers
                # reconnect (to another worker) and resume from their cursor
                timeout_graceful_shutdown=3)
