"""Operator-facing errors: what a missing or wrong setting raises, as one line that names
the setting and says how to fix it — never a traceback.

    ConfigurationError        carries the lines; ``tessera`` prints them and exits 2
    load_settings()           ``Settings()``, its validation errors explained
    explained(settings)       a block whose configuration failures become one
                              ``ConfigurationError`` (database, KEK, files, Redis URL)
    explain(exc, ...)         the lines for one exception, or None for a real bug
    OperatorErrors            the ``tessera`` group class: catches what is left

A line never contains a secret: URLs are shown with the password masked, setting values
are never echoed (pydantic's messages say what is valid, not what was given).
"""

from __future__ import annotations

import socket
import sqlite3
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, NoReturn

import click
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from tessera.keys.errors import KeyError_, UnsealFailed
from tessera.settings import SettingError, Settings

__all__ = ["ConfigurationError", "OperatorErrors", "describe_validation", "explain",
           "explained", "load_settings", "masked_url", "raise_configuration"]

_PREFIXES = {"Settings": "TESSERA_", "TracingSettings": "TESSERA_TRACING__",
             "VerifierSettings": "TESSERA_VERIFIER_", "GatewaySettings": "TESSERA_GATEWAY_",
             "BffSettings": "TESSERA_BFF_"}
_NESTED = {"Settings": "__", "TracingSettings": "__", "BffSettings": "__"}
_DB = "TESSERA_DATABASE_URL"
_KEK = "TESSERA_KEYS__ENCRYPTION_KEY"


class ConfigurationError(click.ClickException):
    """The deployment's configuration is wrong; each line names a setting and a fix."""

    exit_code = 2

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)

    def show(self, file: Any = None) -> None:
        for line in self.lines:
            click.echo(f"error: {line}", err=True)


def describe_validation(exc: ValidationError, title: str | None = None) -> list[str]:
    """One line per invalid setting: ``TESSERA_KEYS__ALGORITHM: … (set … )``."""
    model = title or exc.title
    prefix = _PREFIXES.get(model, "")
    nested = _NESTED.get(model)
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if not loc:  # a rule across fields: name the group of variables
            lines.append(f"{prefix}*: {message}" if prefix else f"{model}: {message}")
            continue
        delimiter = nested or "_"
        variable = prefix + delimiter.join(part.upper() for part in loc)
        where = f"set {variable}"
        if model == "Settings":
            where += f" or {'.'.join(loc)} in tessera.toml"
        lines.append(f"{variable}: {message} ({where})")
    return lines


def load_settings() -> Settings:
    """``Settings()`` from the environment and ``tessera.toml``, or ``ConfigurationError``."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(describe_validation(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError([f"tessera.toml: not valid TOML ({exc}); fix the file "
                                  "or remove it"]) from None
    except SettingsError as exc:
        raise ConfigurationError([_settings_source_error(exc)]) from None


def _settings_source_error(exc: SettingsError) -> str:
    """pydantic-settings' ``error parsing value for field "console" from source …``."""
    text = str(exc)
    field = text.split('field "', 1)[1].split('"', 1)[0] if 'field "' in text else ""
    if field:
        return (f"TESSERA_{field.upper()}__*: a value is not valid JSON (lists and "
                f"tables are written as JSON, e.g. '[\"alice\"]')")
    return f"settings: {text}"


def masked_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (safe to print)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _database_problem(exc: BaseException, url: str | None) -> str | None:
    """The database part of ``explain``: unreachable, refused, missing, not migrated."""
    where = masked_url(url) if url else "the configured database"
    for link in _chain(exc):
        if isinstance(link, DBAPIError):
            orig = link.orig
            sqlstate = getattr(orig, "sqlstate", None)
            text = str(orig)
            if sqlstate == "42P01" or "no such table" in text:
                return (f"{_DB}: the database at {where} is not migrated; "
                        "run `tessera db upgrade`")
            if sqlstate == "3D000":
                return (f"{_DB}: {text} at {where}; create it (createdb) or fix the "
                        "database name")
            if sqlstate in ("28000", "28P01"):
                return (f"{_DB}: the server refused the credentials ({text}); fix the "
                        "user or password in the URL")
            if isinstance(orig, sqlite3.OperationalError) and "unable to open" in text:
                return (f"{_DB}: cannot open the SQLite database at {where}; check that "
                        "its directory exists and is writable (TESSERA_DATA_DIR)")
            return f"{_DB}: the database at {where} failed: {text.splitlines()[0]}"
        if isinstance(link, socket.gaierror):
            return (f"{_DB}: cannot resolve the database host of {where}; fix the host "
                    "name in the URL")
        if isinstance(link, OSError) and link.filename is None:  # refused, timed out,
            reason = type(link).__name__ if isinstance(link, ConnectionError | TimeoutError) \
                else (link.strerror or type(link).__name__)      # no route to host, …
            return (f"{_DB}: cannot reach the database at {where} ({reason}); check the "
                    "URL and that the server is up")
    return None


def explain(exc: BaseException, *, database_url: str | None = None) -> list[str] | None:
    """One-line explanations of a configuration failure; ``None`` if ``exc`` is not one
    (a bug, which should keep its traceback)."""
    if isinstance(exc, ConfigurationError):
        return exc.lines
    if isinstance(exc, ValidationError):
        return describe_validation(exc)
    if isinstance(exc, SettingError):
        return [str(exc)]
    if isinstance(exc, UnsealFailed):
        return [f"{_KEK}: it does not unseal the stored signing keys; set the key they "
                "were sealed with (every instance must use the same one)"]
    if isinstance(exc, KeyError_):
        return [f"signing keys: {exc}"]
    database = _database_problem(exc, database_url)
    if database is not None:
        return [database]
    if isinstance(exc, OSError) and exc.filename is not None:
        return [f"TESSERA_DATA_DIR: cannot use {exc.filename} ({exc.strerror}); point "
                "TESSERA_DATA_DIR at a directory this user can write"]
    redis = _redis_problem(exc)
    if redis is not None:
        return [redis]
    return None


def _redis_problem(exc: BaseException) -> str | None:
    try:
        from redis.exceptions import AuthenticationError, RedisError
    except ImportError:  # pragma: no cover - the redis extra is not installed
        return None
    for link in _chain(exc):
        if isinstance(link, AuthenticationError):
            return ("TESSERA_BUS__REDIS_URL: Redis refused the credentials; fix the user "
                    "or password in the URL")
        if isinstance(link, RedisError):
            return f"TESSERA_BUS__REDIS_URL: {link}; check the URL and that Redis is up"
        if isinstance(link, ValueError) and "Redis URL" in str(link):
            return (f"TESSERA_BUS__REDIS_URL: {link}; e.g. redis://HOST:6379/0 or "
                    "rediss://USER:PASSWORD@HOST:6380/0")
    return None


def raise_configuration(exc: BaseException, settings: Settings | None) -> NoReturn:
    """Raise ``ConfigurationError`` for ``exc`` if it is one, else ``exc`` itself."""
    url = settings.resolved_database_url if settings is not None else None
    lines = explain(exc, database_url=url)
    if lines is None:
        raise exc
    raise ConfigurationError(lines) from exc


@contextmanager
def explained(settings: Settings | None) -> Iterator[None]:
    """Turn configuration failures inside the block into ``ConfigurationError``."""
    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        raise_configuration(exc, settings)


class OperatorErrors(click.Group):
    """``tessera``'s group: a configuration failure that escaped a verb prints its
    ``error: …`` lines and exits 2 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            settings = None
            with suppress(Exception):  # best effort: only for the URL in the message
                settings = Settings()
            lines = explain(exc, database_url=settings.resolved_database_url
                            if settings is not None else None)
            if lines is None:
                raise
            raise ConfigurationError(lines) from exc
