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

__all__ = ["echo_json", "fail", "run_json", "run_with_identity"]

T = TypeVar("T")


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, sort_keys=True))


def run_with_identity(work: Callable[[Identity], Awaitable[T]]) -> T:
    settings = Settings()
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_database(settings.resolved_database_url)

    async def main() -> T:
        identity = await build_identity(settings)
        try:
            return await work(identity)
        finally:
            await identity.aclose()

    return asyncio.run(main())


def run_json(work: Callable[[Identity], Awaitable[Any]]) -> None:
    """Run ``work`` and print its result as JSON; an ``AdminError`` or ``StoreError`` is
    one ``error: …`` line on standard error and exit status 2."""
    from tessera.identity.admin import AdminError
    from tessera.store.ports import StoreError

    try:
        result = run_with_identity(work)
    except (AdminError, StoreError) as exc:
        fail(str(exc))
        return
    echo_json(result)
