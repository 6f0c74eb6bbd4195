"""Shared CLI plumbing: settings, running async work against a built identity."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import click

from tessera.cli._errors import explained, load_settings
from tessera.identity.compose import Identity, build_identity
from tessera.settings import Settings
from tessera.store.migrations import upgrade_database
from tessera.store.sql import create_store

__all__ = ["built_identity", "echo_json", "fail", "identifier", "run_json", "run_with_identity",
           "tenant_identifier"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, sort_keys=True))


async def built_identity(settings: Settings) -> Identity:
    """``build_identity`` that closes its store when building fails (a wrong KEK, an
    unmigrated database), so a failed command leaves no connection behind."""
    store = create_store(settings.resolved_database_url)
    try:
        return await build_identity(settings, store=store)
    except BaseException:
        await store.close()
        raise


def run_with_identity(work: Callable[[Identity], Awaitable[T]]) -> T:
    """Run ``work`` against the configured deployment. A missing or wrong setting (the
    database, the KEK, …) is a ``ConfigurationError`` raised before ``work`` starts."""
    settings = load_settings()
    if settings.is_sqlite:
        with explained(settings):
            settings.prepare_data_dir()
            upgrade_database(settings.resolved_database_url)

    async def main() -> T:
        with explained(settings):
            identity = await built_identity(settings)
        try:
            return await work(identity)
        finally:
            await identity.aclose()

    return asyncio.run(main())


def run_json(work: Callable[[Identity], Awaitable[Any]]) -> None:
    """Run ``work`` and print its result as JSON; an ``AdminError`` or ``StoreError`` is
    one ``error: …`` line on standard error and exit status 2."""
    from tessera.application.admin import AdminError
    from tessera.store.ports import StoreError

    try:
        result = run_with_identity(work)
    except (AdminError, StoreError) as exc:
        fail(str(exc))
        return
    echo_json(result)


def identifier(param: str, *, metavar: str, help: str = "", flag: str | None = None,
               aliases: tuple[str, ...] = (), required: bool = True) -> Callable[[F], F]:
    """Take an identifier either as the command's argument or as an option (one name per
    idea: ``tessera sessions show SID`` and ``… show --sid SID`` are the same), once.
    The option is ``--<param>`` (``_`` as ``-``) unless ``flag`` names it (the tenant's
    is ``--tenant``), plus any older spellings in ``aliases``. The command receives the
    value as ``param``; with ``required=False`` it receives None when neither is given
    (the command then needs another way to name its target, e.g. ``--user-id``)."""
    flag = flag or "--" + param.replace("_", "-")

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def resolved(*args: Any, **kwargs: Any) -> Any:
            given = kwargs.pop(f"{param}_arg"), kwargs.pop(f"{param}_opt")
            if given[0] is not None and given[1] is not None and given[0] != given[1]:
                fail(f"give {metavar} once ({metavar} or {flag})")
            value = given[0] if given[0] is not None else given[1]
            if value is None and required:
                fail(f"missing {metavar} (give it as the argument or as {flag})")
            return command(*args, **{param: value}, **kwargs)

        with_option = click.option(flag, *aliases, f"{param}_opt", default=None,
                                   metavar=metavar,
                                   help=help or f"Same as the {metavar} argument.")(resolved)
        return cast(F, click.argument(f"{param}_arg", metavar=f"[{metavar}]",
                                      required=False)(with_option))

    return decorate


def tenant_identifier(help: str = "") -> Callable[[F], F]:
    """``identifier`` for a tenant: ``TENANT`` or ``--tenant TENANT`` (the flag every
    command has used for the tenant id), received as ``tenant_id``."""
    return identifier("tenant_id", flag="--tenant", metavar="TENANT", help=help)
