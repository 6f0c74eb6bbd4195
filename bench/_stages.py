"""Per-stage breakdown of one request, in process (no HTTP server, no sockets): the real
Starlette app driven through ASGI one request at a time, with timers wrapped around the
named steps of each endpoint. Prints one JSON object (µs per request, wall time, so the
stages of one request add up to its latency; ``framework`` is what is left: Starlette
routing, middleware, tracing, request/response objects).

    .venv/bin/python bench/_stages.py [--algorithm ES256] [-n 2000] [--pg-url URL]
                                      [--only refresh_token]

``--pg-url``: run on a scratch database on that PostgreSQL server instead of SQLite.

token_endpoint.py runs it as a subprocess (it sets up its own data dir and environment).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import functools
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from profile_token_endpoint import _call, _prepare, _refresh_chains, _scope, _setup

_spent: defaultdict[str, float] = defaultdict(float)
_stack: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("stages", default=())
_counts: defaultdict[str, int] = defaultdict(int)
"""Per endpoint: units of work opened, rotations done by the refresh hot path."""
_measuring = [False]
"""Only the request being measured counts: background tasks (relays, the revocation
state's follower) start outside it and are not timed; the audit writer, started by a
request, counts its commit as ``store`` inside ``audit``."""


@contextlib.contextmanager
def _stage(stage: str) -> Iterator[None]:
    outer = _stack.get()
    if not _measuring[0] or (not outer and stage != "request"):
        yield
        return
    token = _stack.set((*outer, stage))
    t0 = time.perf_counter()
    try:
        yield
    finally:
        dt = time.perf_counter() - t0
        _stack.reset(token)
        _spent[stage] += dt
        if outer:
            _spent[outer[-1]] -= dt


def _timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` so its wall time counts for ``stage`` (nested stages are subtracted
    from their parent: each microsecond is counted once)."""
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with _stage(stage):
                return await fn(*args, **kwargs)
        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _stage(stage):
            return fn(*args, **kwargs)
    return wrapper


def _instrument() -> None:
    from contextlib import asynccontextmanager

    from tessera.identity import app as app_module
    from tessera.identity import http as http_module
    from tessera.observability.audit import AuditLog
    from tessera.protocol import token_state
    from tessera.protocol.clients import ClientAuthenticator
    from tessera.protocol.rfc6749 import token_endpoint
    from tessera.protocol.rfc6749.grants import client_credentials, refresh_token
    from tessera.protocol.rfc7662 import introspection
    from tessera.protocol.rfc9068.access_token import AccessTokenIssuer
    from tessera.store.sql.engine import SqlStore

    for module in (token_endpoint, introspection):
        module.parse_params = _timed("parse", module.parse_params)  # type: ignore[attr-defined]
    app_module.read_request = _timed("parse", app_module.read_request)  # type: ignore[attr-defined]
    app_module.send = _timed("response", app_module.send)  # type: ignore[attr-defined]
    http_module.send = app_module.send  # type: ignore[attr-defined]
    # the protocol endpoints' hot path (ProtocolRoutes) reads and answers in plain ASGI
    app_module.read_asgi = _timed("parse", app_module.read_asgi)  # type: ignore[attr-defined]
    app_module.send_asgi = _timed("response", app_module.send_asgi)  # type: ignore[attr-defined]
    ClientAuthenticator.authenticate = _timed(  # type: ignore[method-assign]
        "client authentication", ClientAuthenticator.authenticate)
    AccessTokenIssuer.sign = _timed("signing", AccessTokenIssuer.sign)  # type: ignore[method-assign]
    AccessTokenIssuer.verify = _timed(  # type: ignore[method-assign]
        "signature check", AccessTokenIssuer.verify)
    AuditLog.record = _timed("audit (group commit)", AuditLog.record)  # type: ignore[method-assign]
    for grant in (client_credentials.ClientCredentialsGrant, refresh_token.RefreshTokenGrant):
        grant.handle = _timed("grant logic", grant.handle)  # type: ignore[method-assign]
    token_state.AccessTokenState.check = _timed(  # type: ignore[method-assign]
        "revocation state", token_state.AccessTokenState.check)
    original = SqlStore.unit_of_work

    @asynccontextmanager
    async def unit_of_work(self: SqlStore, *, read_only: bool = False) -> Any:
        if _measuring[0]:
            _counts["units of work"] += 1
        with _stage("store"):
            async with original(self, read_only=read_only) as uow:
                yield uow

    SqlStore.unit_of_work = unit_of_work  # type: ignore[method-assign,assignment]
    rotations = SqlStore.refresh_rotations

    @asynccontextmanager
    async def refresh_rotations(self: SqlStore) -> Any:
        with _stage("store"):
            async with rotations(self) as inner:
                yield _TimedRotations(inner)

    SqlStore.refresh_rotations = refresh_rotations  # type: ignore[method-assign,assignment]


class _TimedRotations:
    """The refresh hot path's read and write count as ``store``; what the grant does
    between them (inside the connection's scope) as ``grant logic``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def read(self, *args: Any) -> Any:
        with _stage("store: read"):
            return await self._inner.read(*args)

    async def rotate(self, *args: Any) -> Any:
        with _stage("store: write"):
            done = await self._inner.rotate(*args)
        if _measuring[0]:
            _counts["one-write rotations"] += 1 if done else 0
        return done


async def _measure(app: Any, path: str, auth: str, body_of: Callable[[], bytes], n: int,
                   after: Callable[[bytes], None] | None = None) -> dict[str, float]:
    for _ in range(50):  # warm-up, not counted
        body = body_of()
        status, payload = await _call(app, _scope(path, auth, body), body)
        if after:
            after(payload)
    _spent.clear()
    _counts.clear()
    _measuring[0] = True
    t0 = time.perf_counter()
    for _ in range(n):
        body = body_of()
        with _stage("request"):
            status, payload = await _call(app, _scope(path, auth, body), body)
        if status != 200:
            raise SystemExit(f"{path}: {status} {payload[:200]!r}")
        if after:
            after(payload)
    total = (time.perf_counter() - t0) / n * 1e6
    _measuring[0] = False
    stages = {k: round(v / n * 1e6, 1) for k, v in _spent.items() if k != "request"}
    stages["framework"] = round(_spent["request"] / n * 1e6, 1)
    stages["total"] = round(total, 1)
    for name, count in _counts.items():  # not µs: per request
        stages[f"{name} per request"] = round(count / n, 2)
    return stages


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    identity, app, auth = await _setup(args.algorithm)
    _instrument()
    audience = f"https://api.example.internal/{args.algorithm.lower()}"
    cc = (f"grant_type=client_credentials&scope=api:read&resource="
          f"{audience.replace(':', '%3A').replace('/', '%2F')}").encode()
    out: dict[str, Any] = {"algorithm": args.algorithm, "n": args.n,
                           "store": identity.store.engine.dialect.name}
    if not args.only or "client_credentials" in args.only:
        out["client_credentials"] = await _measure(app, "/token", auth, lambda: cc, args.n)
    if not args.only or "introspect" in args.only:
        await _introspect(args, identity, app, auth, cc, out)
    if not args.only or "refresh_token" in args.only:
        [chain] = await _refresh_chains(app, auth, audience, 1)
        current = [chain]

        def body() -> bytes:
            return f"grant_type=refresh_token&refresh_token={current[0]}".encode()

        def keep(payload: bytes) -> None:
            current[0] = json.loads(payload)["refresh_token"]

        out["refresh_token"] = await _measure(app, "/token", auth, body, args.n // 2, keep)
    await identity.aclose()
    return out


async def _introspect(args: argparse.Namespace, identity: Any, app: Any, auth: str,
                      cc: bytes, out: dict[str, Any]) -> None:
    _, payload = await _call(app, _scope("/token", auth, cc), cc)
    token = json.loads(payload)["access_token"]
    ibody = f"token_type_hint=access_token&token={token}".encode()
    if args.mirror:
        identity.start_relays()
        task = asyncio.get_running_loop().create_task(identity.mirror.run())
        for _ in range(500):  # the state loads its snapshot and hears a watermark
            if identity.mirror.usable(identity.clock.now()):
                break
            await asyncio.sleep(0.01)
    out["introspect"] = await _measure(app, "/introspect", auth, lambda: ibody, args.n)
    out["introspect_from_memory"] = identity.mirror.answered >= args.n
    if args.mirror:
        task.cancel()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--algorithm", choices=("RS256", "ES256", "EdDSA"), default="ES256")
    p.add_argument("--no-mirror", dest="mirror", action="store_false",
                   help="introspection from the store (the in-memory state not started)")
    p.add_argument("--pg-url", default=None,
                   help="PostgreSQL server: run on a scratch database there, not SQLite")
    p.add_argument("--only", type=lambda v: set(v.split(",")), default=None,
                   help="comma-separated: client_credentials,introspect,refresh_token")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tessera-stages-"))
    try:
        with contextlib.ExitStack() as stack:
            url = None
            if args.pg_url:
                from _pg import scratch_database

                url = stack.enter_context(scratch_database(args.pg_url, "tessera_stages"))
            _prepare(tmp, args.algorithm, url)
            os.environ.setdefault("TESSERA_AUDIT_LOG_JSON", "false")
            print(json.dumps(asyncio.run(main_async(args))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
