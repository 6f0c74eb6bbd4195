"""Shared CLI plumbing: settings, running async work against a built identity."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from tessera.identity.compose import Identity, build_identity
from tessera.settings import Settings
from tessera.store.migrations import upgrade_database

__all__ = ["echo_json", "fail", "run_with_identity"]

T = TypeVar("T")


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, sort_keys=True))


def run_with_identity(work: Callable[[Identity], Awaitable[T]]) -> T:
    settings = Settings()
    if settings.is_sqlite:
        settings.prepare_data_dir()
        upgrade_database(settings.resolved_database_url)

    async def main() -> T:
        identity = await build_identity(settings)
        try:
            return await work(identity)
        finally:
            await identity.aclose()

    return asyncio.run(main())
