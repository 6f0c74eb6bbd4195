"""The checks behind ``tessera doctor``: read-only, each a ``Finding`` with a fix.

    settings     load from the environment and tessera.toml; misspelt TESSERA_* names
    issuer       https unless loopback; Secure cookies behind https
    database     reachable, migrated to this code's head revision
    redis        (when bus.redis_url is set) reachable, credentials accepted, TLS off-host
    kek          present, the right shape, private on disk
    signing_keys an active key exists and the KEK unseals every published key
    files        data directory, database file and tessera.toml not readable by others

Nothing here creates, migrates or writes anything: a SQLite file that does not exist is
reported, not created; a missing ``data/kek`` is not generated.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel
from sqlalchemy.engine import make_url

from tessera.cli._errors import ConfigurationError, explain, load_settings, masked_url
from tessera.core.urls import is_loopback_host
from tessera.keys import Sealer
from tessera.keys.errors import KeyError_, UnsealFailed
from tessera.keys.ring import KeyState
from tessera.settings import Settings
from tessera.store.migrations import database_revision, head_revision, known_revision
from tessera.store.ports import SealedKey
from tessera.store.sql import SqlStore, create_store

__all__ = ["Finding", "diagnose", "setting_variables"]

Status = Literal["ok", "warn", "fail"]
_TIMEOUT = 5.0
"""Seconds each network check (database, Redis) may take."""
_OTHER_PREFIXES = ("TESSERA_VERIFIER_", "TESSERA_GATEWAY_", "TESSERA_TEST_")


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    message: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def diagnose(environ: Mapping[str, str] | None = None) -> list[Finding]:
    """Every check, in order; later checks are skipped when what they need failed."""
    env = os.environ if environ is None else environ
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        return [Finding("settings", "fail", line) for line in exc.lines]
    found = [Finding("settings", "ok", "loaded from the environment"
                     + (" and tessera.toml" if Path("tessera.toml").exists() else ""))]
    found += _misspelt(env)
    found += _issuer(settings, explicit="TESSERA_ISSUER" in env or _in_toml("issuer"))
    found += _files(settings)
    kek, kek_findings = _kek(settings)
    found += kek_findings
    found += _store_checks(settings, kek)
    if settings.bus.redis_url:
        found += asyncio.run(_redis(settings.bus.redis_url))
    return found


# -- settings -----------------------------------------------------------------------

def setting_variables(model: type[BaseModel], prefix: str) -> tuple[set[str], list[str]]:
    """Variable names of ``model``'s fields, and prefixes under which anything goes
    (dict-valued fields such as ``exchange.clients``)."""
    names: set[str] = set()
    open_prefixes: list[str] = []
    for name, field in model.model_fields.items():
        variable = f"{prefix}{name.upper()}"
        names.add(variable)
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            inner, anything = setting_variables(kind, variable + "__")
            names |= inner
            open_prefixes += anything
        elif "dict[" in str(kind):
            open_prefixes.append(variable + "__")
    return names, open_prefixes


def _misspelt(env: Mapping[str, str]) -> list[Finding]:
    known, open_prefixes = setting_variables(Settings, "TESSERA_")
    found = []
    for variable in sorted(env):
        upper = variable.upper()
        if (not upper.startswith("TESSERA_") or upper in known
                or upper.startswith((*_OTHER_PREFIXES, *open_prefixes))):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.85)
        if close:
            found.append(Finding("settings", "warn", f"{variable} is not a setting and is "
                                 "ignored", f"did you mean {close[0]}?"))
    return found


def _in_toml(name: str) -> bool:
    try:
        return name in tomllib.loads(Path("tessera.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _issuer(settings: Settings, *, explicit: bool) -> list[Finding]:
    if not explicit:
        return [Finding("issuer", "warn", "TESSERA_ISSUER is not set: `tessera serve` "
                        "makes it http://HOST:PORT from its --host and --port",
                        "set TESSERA_ISSUER to the URL clients use (https)")]
    parts = urlsplit(settings.issuer)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        return [Finding("issuer", "fail", f"{settings.issuer!r} is not an http(s) URL",
                        "set TESSERA_ISSUER=https://HOST[/PATH]")]
    if parts.scheme == "http" and not is_loopback_host(host):
        return [Finding("issuer", "fail", f"{settings.issuer} is plain http on a "
                        "non-loopback host: tokens and cookies would travel in clear",
                        "set TESSERA_ISSUER to the https URL clients use (TLS may end "
                        "at the load balancer)")]
    found = [Finding("issuer", "ok", settings.issuer + (
        " (loopback http: development only)" if parts.scheme == "http" else ""))]
    if parts.scheme == "https" and not settings.security.cookie_secure:
        found.append(Finding("issuer", "warn", "the login cookie lacks the Secure flag "
                             "behind an https issuer",
                             "set TESSERA_SECURITY__COOKIE_SECURE=true"))
    return found


# -- key-encryption key and files ---------------------------------------------------

def _kek(settings: Settings) -> tuple[Sealer | None, list[Finding]]:
    configured = settings.keys.encryption_key
    if configured:
        return Sealer.from_b64(configured), [Finding(
            "kek", "ok", "TESSERA_KEYS__ENCRYPTION_KEY is set (32 bytes)")]
    if not settings.is_sqlite:
        return None, [Finding("kek", "fail", "TESSERA_KEYS__ENCRYPTION_KEY is not set; it "
                              "is required with PostgreSQL",
                              "generate one with `tessera keys generate-kek` and give "
                              "every instance the same value")]
    path = settings.data_dir / "kek"
    if not path.exists():
        return None, [Finding("kek", "warn", f"{path} does not exist yet; the first "
                              "`tessera serve` generates it",
                              "or set TESSERA_KEYS__ENCRYPTION_KEY "
                              "(`tessera keys generate-kek`)")]
    try:
        return Sealer.from_b64(path.read_text().strip()), [
            Finding("kek", "ok", f"{path} (generated for the embedded store)")]
    except (OSError, KeyError_) as exc:
        return None, [Finding("kek", "fail", f"{path} is unusable: {exc}",
                              "restore the file, or set TESSERA_KEYS__ENCRYPTION_KEY "
                              "to the key the signing keys were sealed with")]


def _mode_finding(path: Path, *, forbidden: int, wanted: str, what: str) -> Finding | None:
    """A failure if ``path`` has any of the ``forbidden`` permission bits."""
    try:
        info = path.stat()
    except OSError:
        return None
    mode = stat.S_IMODE(info.st_mode)
    if mode & forbidden:
        who = "group or others" if forbidden & stat.S_IRWXG else "others"
        return Finding("files", "fail", f"{what} {path} is open to {who} (mode {mode:04o})",
                       f"chmod {wanted} {path}")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        return Finding("files", "warn", f"{what} {path} belongs to uid {info.st_uid}, "
                       f"not to this user ({os.geteuid()})",
                       f"run Tessera as its owner, or chown {path}")
    return None


def _files(settings: Settings) -> list[Finding]:
    """The data directory holds the embedded database (password hashes, sealed keys) and
    the generated KEK: nobody else may enter it. The KEK file is the owner's alone; the
    settings file may hold secrets, so others may not read it."""
    others, group_or_others = stat.S_IRWXO, stat.S_IRWXG | stat.S_IRWXO
    checks = [(Path("tessera.toml"), others, "640", "the settings file")]
    if settings.is_sqlite or not settings.keys.encryption_key:
        checks += [(settings.data_dir, others, "700", "the data directory"),
                   (settings.data_dir / "kek", group_or_others, "600",
                    "the key-encryption key file")]
    found = [f for path, forbidden, wanted, what in checks
             if (f := _mode_finding(path, forbidden=forbidden, wanted=wanted, what=what))
             is not None]
    return found or [Finding("files", "ok", "the data directory and secrets on disk are "
                             "private")]


# -- database and signing keys ------------------------------------------------------

def _store_checks(settings: Settings, sealer: Sealer | None) -> list[Finding]:
    url = settings.resolved_database_url
    if settings.is_sqlite:
        database = make_url(url).database or ""
        if database and database != ":memory:" and not Path(database).exists():
            return [Finding("database", "warn", f"{masked_url(url)} does not exist yet",
                            "`tessera db upgrade` (or the first `tessera serve`) creates it")]
    return asyncio.run(_database(settings, sealer))


async def _database(settings: Settings, sealer: Sealer | None) -> list[Finding]:
    url = settings.resolved_database_url
    where = masked_url(url)
    store = create_store(url)
    try:
        try:
            revision = await asyncio.wait_for(database_revision(store.engine), _TIMEOUT)
        except TimeoutError:
            return [Finding("database", "fail", f"{where} did not answer within "
                            f"{_TIMEOUT:.0f} s", "check TESSERA_DATABASE_URL, the network "
                            "and that the server is up")]
        except Exception as exc:
            lines = explain(exc, database_url=url)
            if lines is None:
                raise
            return [Finding("database", "fail", line) for line in lines]
        head = head_revision()
        if revision != head:
            return [_migration_finding(where, revision, head)]
        found = [Finding("database", "ok", f"{where} reachable, schema at {head} (head)")]
        return found + await _signing_keys(settings, store, sealer)
    finally:
        await store.close()


def _migration_finding(where: str, revision: str | None, head: str) -> Finding:
    if revision is None:
        return Finding("database", "fail", f"{where} is reachable but not migrated",
                       "run `tessera db upgrade` (the Kubernetes Job tessera-migrate)")
    if known_revision(revision):
        return Finding("database", "fail", f"{where} is at schema {revision}, this "
                       f"version needs {head}", "run `tessera db upgrade`")
    return Finding("database", "fail", f"{where} is at schema {revision}, which this "
                   f"version does not know (expects {head}): a newer release migrated it",
                   "run the newer release, or restore the database")


async def _signing_keys(settings: Settings, store: SqlStore,
                        sealer: Sealer | None) -> list[Finding]:
    async with store.unit_of_work(read_only=True) as uow:
        rows = [r for r in await uow.keys.all() if r.state != KeyState.RETIRED.value]
    if not rows:
        return [Finding("signing_keys", "warn", "no signing keys yet",
                        "the first `tessera serve` creates them (or `tessera keys rotate`)")]
    active = [r for r in rows if r.state == KeyState.ACTIVE.value]
    if not active:
        return [Finding("signing_keys", "fail", "no active signing key: nothing can sign "
                        "tokens", "run `tessera keys rotate`")]
    if sealer is None:
        return [Finding("signing_keys", "fail", f"{len(rows)} sealed key(s) but no "
                        "key-encryption key to open them",
                        "set TESSERA_KEYS__ENCRYPTION_KEY to the key they were sealed with")]
    unopened = [r.kid for r in rows if not _opens(sealer, r)]
    if unopened:
        return [Finding("signing_keys", "fail", "the key-encryption key does not unseal "
                        f"key(s) {', '.join(unopened)}",
                        "set TESSERA_KEYS__ENCRYPTION_KEY to the key they were sealed "
                        "with (the same on every instance)")]
    names = ", ".join(f"{r.kid} ({r.alg})" for r in active)
    found = [Finding("signing_keys", "ok", f"active {names}; {len(rows)} "
                     "published key(s), all unsealed by the KEK")]
    algs = {r.alg for r in active}
    for name, alg in (("TESSERA_KEYS__ALGORITHM", settings.keys.algorithm),
                      ("TESSERA_KEYS__ID_TOKEN_ALGORITHM", settings.keys.id_token_algorithm)):
        if alg not in algs:
            found.append(Finding("signing_keys", "warn", f"no active {alg} key, "
                                 f"{name} is {alg}",
                                 "expected during an algorithm change: the next "
                                 "`tessera serve` adds the keys"))
    return found


def _opens(sealer: Sealer, row: SealedKey) -> bool:
    try:
        sealer.open(row.sealed_private, context=row.kid)
    except UnsealFailed:
        return False
    except KeyError_:
        return False
    return True


# -- Redis --------------------------------------------------------------------------

async def _redis(url: str) -> list[Finding]:
    try:
        from redis.exceptions import AuthenticationError, RedisError

        from tessera.bus.redis_url import connect
    except ImportError:
        return [Finding("redis", "fail", "TESSERA_BUS__REDIS_URL is set but the redis "
                        "client is not installed", "pip install 'tessera[redis]'")]
    shown = _masked_redis(url)
    try:
        client = connect(url, socket_connect_timeout=_TIMEOUT, socket_timeout=_TIMEOUT)
    except ValueError as exc:
        return [Finding("redis", "fail", f"TESSERA_BUS__REDIS_URL: {exc}",
                        "e.g. redis://HOST:6379/0, rediss://USER:PASSWORD@HOST:6380/0 or "
                        "redis+sentinel://HOST:26379/SERVICE")]
    try:
        await asyncio.wait_for(client.ping(), _TIMEOUT + 1)
        try:
            version = (await client.info("server")).get("redis_version", "?")
        except RedisError:  # an ACL user may not be allowed INFO: that is fine
            version = "?"
    except AuthenticationError:
        return [Finding("redis", "fail", f"{shown} refused the credentials",
                        "fix the user or password in TESSERA_BUS__REDIS_URL")]
    except (RedisError, OSError, TimeoutError) as exc:
        return [Finding("redis", "fail", f"cannot reach Redis at {shown} "
                        f"({type(exc).__name__})", "check TESSERA_BUS__REDIS_URL and that "
                        "Redis is up")]
    finally:
        await client.aclose()
    found = [Finding("redis", "ok", f"{shown} answers (Redis {version})")]
    parts = urlsplit(url)
    if parts.scheme == "redis" and not is_loopback_host(parts.hostname or ""):
        found.append(Finding("redis", "warn", f"{shown} is reached without TLS",
                             "use rediss:// for a Redis server on another host"))
    return found


def _masked_redis(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
