"""Where the client_credentials request spends its CPU: cProfile of the real Starlette app,
in process, driven through the ASGI interface (no uvicorn, no sockets), with 16 requests
in flight as wrk -c16 would have. Also times the primitives one by one.

    .venv/bin/python bench/profile_token_endpoint.py              # 3000 requests, RS256
    .venv/bin/python bench/profile_token_endpoint.py -n 5000 --algorithm EdDSA --top 40
    .venv/bin/python bench/profile_token_endpoint.py --no-audit   # what-if: audit a no-op

Single process, so the SQLite write lock is never contended here (as it is between
``serve --workers 2`` processes): this shows CPU cost, not waiting. See
token_endpoint.py for throughput and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

REDIRECT = "http://127.0.0.1/bench-cb"
USERNAME, PASSWORD = "bench-user", "bench-password-0123456789"


def _prepare(tmp: Path, algorithm: str, database_url: str | None = None) -> None:
    """Environment and schema (alembic runs its own event loop: before ours). SQLite in
    ``tmp`` unless ``database_url`` is given (an empty database)."""
    os.environ.update({"TESSERA_DATA_DIR": str(tmp / "data"),
                       "TESSERA_ISSUER": "http://127.0.0.1:8000",
                       "TESSERA_KEYS__ALGORITHM": algorithm})
    if database_url:
        os.environ["TESSERA_DATABASE_URL"] = database_url
        os.environ.setdefault("TESSERA_KEYS__ENCRYPTION_KEY", base64.urlsafe_b64encode(
            os.urandom(32)).rstrip(b"=").decode())  # required with PostgreSQL
    else:
        os.environ.pop("TESSERA_DATABASE_URL", None)
    from tessera.settings import Settings
    from tessera.store.migrations import upgrade_database

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.resolved_database_url)


async def _setup(algorithm: str) -> tuple[Any, Any, str]:
    from tessera.application import admin
    from tessera.identity.app import build_app
    from tessera.identity.compose import build_identity
    from tessera.settings import Settings

    settings = Settings()
    identity = await build_identity(settings)
    audience = f"https://api.example.internal/{algorithm.lower()}"
    client, secret = await admin.create_client(
        identity.admin, name="bench",
        grants=("client_credentials", "refresh_token", "authorization_code"),
        redirect_uris=(REDIRECT,), scope="api:read api:write", audiences=(audience,))
    await admin.create_user(identity.admin, username=USERNAME, password=PASSWORD)
    assert secret is not None
    auth = "Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    return identity, build_app(identity), auth


def _scope(path: str, auth: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 40000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", auth.encode()),
                    (b"content-type", b"application/x-www-form-urlencoded"),
                    (b"content-length", str(len(body)).encode())],
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def _drive(app: Any, scope: dict[str, Any], body: bytes, n: int, conc: int,
                 expect: bytes = b"access_token") -> int:
    bad = 0
    left = n

    async def worker() -> None:
        nonlocal bad, left
        while left > 0:
            left -= 1
            status, payload = await _call(app, scope, body)
            if status != 200 or expect not in payload:
                bad += 1

    await asyncio.gather(*(worker() for _ in range(conc)))
    return bad


async def _refresh_chains(app: Any, auth: str, audience: str, count: int) -> list[str]:
    """Log in ``count`` times through /authorize (like tests/support.py) over ASGI."""
    import html
    import re
    from urllib.parse import parse_qs, urlsplit

    import httpx

    client_id = base64.b64decode(auth[6:]).decode().partition(":")[0]
    chains = []
    for _ in range(count):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1:8000") as http:
            page = await http.get("/authorize", params={
                "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
                "scope": "api:read", "state": "s", "resource": audience})
            form = {k: html.unescape(v)
                    for k, v in re.findall(r"name='([^']+)' value='([^']*)'", page.text)}
            done = await http.post("/authorize", data=form | {"username": USERNAME,
                                                              "password": PASSWORD})
            code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
            token = await http.post("/token", headers={"authorization": auth}, data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
            chains.append(token.json()["refresh_token"])
    return chains


async def _drive_refresh(app: Any, auth: str, chains: list[str], n: int) -> int:
    from urllib.parse import urlencode

    bad = 0
    left = n

    async def worker(i: int) -> None:
        nonlocal bad, left
        while left > 0:
            left -= 1
            body = urlencode({"grant_type": "refresh_token",
                              "refresh_token": chains[i]}).encode()
            status, payload = await _call(app, _scope("/token", auth, body), body)
            if status != 200:
                bad += 1
                return
            chains[i] = json.loads(payload)["refresh_token"]

    await asyncio.gather(*(worker(i) for i in range(len(chains))))
    return bad


def _serialize_writes(store: Any) -> None:
    """What-if: one write transaction at a time per process (an asyncio.Lock around
    non-read-only units of work), so pooled SQLite connections stop meeting in SQLite's
    sleeping busy handler."""
    from contextlib import asynccontextmanager

    original = store.unit_of_work
    lock = asyncio.Lock()

    @asynccontextmanager
    async def unit_of_work(*, read_only: bool = False) -> Any:
        if read_only:
            async with original(read_only=True) as uow:
                yield uow
            return
        async with lock, original() as uow:
            yield uow

    store.unit_of_work = unit_of_work


def _primitives(identity: Any, auth: str, body: bytes) -> None:
    from tessera.core.secrets import token_hash
    from tessera.protocol.http import OAuthRequest, parse_params
    from tessera.protocol.rfc9068.access_token import AccessTokenClaims, new_jti

    req = OAuthRequest(method="POST", url="http://x/token", body=body,
                       headers={"content-type": "application/x-www-form-urlencoded",
                                "authorization": auth})
    now = int(time.time())
    claims = AccessTokenClaims(sub="c_x", client_id="c_x",
                               audience=("https://api.example.internal/rs256",),
                               scope=frozenset({"api:read"}), iat=now, exp=now + 300,
                               jti=new_jti(), tenant_id="default")
    token = identity.access_tokens.sign(claims)
    items = {
        f"sign access token ({identity.keys.ring.active.alg}, PyJWT)":
            lambda: identity.access_tokens.sign(claims),
        "verify access token": lambda: identity.access_tokens.verify(token, now=now, leeway=30),
        "token_hash (sha256)": lambda: token_hash(token),
        "parse_params": lambda: parse_params(req, max_body=16384),
        "new_jti": new_jti,
    }
    print("primitives (µs per call, one thread):")
    for name, fn in items.items():
        n = 300 if "sign" in name else 3000
        print(f"  {name:45s} {timeit.timeit(fn, number=n) / n * 1e6:8.1f}")


async def main_async(args: argparse.Namespace) -> None:
    identity, app, auth = await _setup(args.algorithm)
    if args.write_lock:
        _serialize_writes(identity.store)
    if args.no_audit:
        async def _no_audit(*_a: Any, **_k: Any) -> None:
            return None
        identity.audit.record = _no_audit
    audience = f"https://api.example.internal/{args.algorithm.lower()}"
    body = (f"grant_type=client_credentials&scope=api:read&resource="
            f"{audience.replace(':', '%3A').replace('/', '%2F')}").encode()
    scope = _scope("/token", auth, body)
    if args.grant == "introspect":
        _, payload = await _call(app, scope, body)
        ibody = (b"token_type_hint=access_token&token="
                 + json.loads(payload)["access_token"].encode())
        iscope = _scope("/introspect", auth, ibody)

        async def run() -> int:
            return await _drive(app, iscope, ibody, args.n, args.conc, expect=b'"active":true')
    elif args.grant == "refresh_token":
        chains = await _refresh_chains(app, auth, audience, args.conc)

        async def run() -> int:
            return await _drive_refresh(app, auth, chains, args.n)
    else:
        async def run() -> int:
            return await _drive(app, scope, body, args.n, args.conc)
    assert await _drive(app, scope, body, 200, args.conc) == 0, "warm-up requests failed"
    t0, c0 = time.perf_counter(), time.process_time()
    bad = await run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"unprofiled {args.grant}: {args.n} requests, {args.n / wall:.0f} req/s in one "
          f"process (no HTTP server), {cpu / args.n * 1e6:.0f} µs CPU/request "
          f"(all threads), {bad} bad")
    prof = cProfile.Profile()
    prof.enable()
    bad = await run()
    prof.disable()
    if bad:
        print(f"WARNING: {bad} responses were not 200 with an access token")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(args.top)
        print(f"--- cProfile by {order} ({args.n} requests) ---")
        print("\n".join(out.getvalue().splitlines()[4:]))
    _primitives(identity, auth, body)
    await identity.aclose()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=3000)
    p.add_argument("--conc", type=int, default=16)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--algorithm", choices=("RS256", "ES256", "EdDSA"), default="RS256")
    p.add_argument("--grant", choices=("client_credentials", "refresh_token", "introspect"),
                   default="client_credentials")
    p.add_argument("--write-lock", action="store_true",
                   help="what-if: serialize write transactions per process (asyncio.Lock)")
    p.add_argument("--no-audit", action="store_true",
                   help="what-if: make AuditLog.record a no-op (not a supported setting)")
    p.add_argument("--database-url",
                   help="an empty database to profile on (PostgreSQL); default SQLite")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tessera-prof-"))
    try:
        _prepare(tmp, args.algorithm, args.database_url)
        asyncio.run(main_async(args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
