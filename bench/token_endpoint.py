"""Token endpoint benchmark: Tessera against node-oidc-provider, same load, same machine.

    .venv/bin/python bench/token_endpoint.py                  # ~5 min, 20 s per run
    .venv/bin/python bench/token_endpoint.py --duration 5     # quick look
    .venv/bin/python bench/token_endpoint.py --no-peer        # Tessera only

Sequentially (both servers up only for the rounds): the peer (node-oidc-provider v9 from
../shared/peers/oidc-provider, installed with ``npm ci`` into a scratch folder), then
Tessera (``tessera serve --workers N``, SQLite in a temp dir). Both get the same wrk load
(``wrk -t1 -c16 --timeout 5s`` with shared/peers/wrk/req.lua, as wrk/lib.sh runs it):

- ``POST /token`` client_credentials, client_secret_basic, JWT access token signed with
  the same algorithm on both sides (``resource=https://api.example.internal/rs256``);
- token introspection of a valid access token, client-authenticated (the peer can only
  introspect opaque tokens, so its token is opaque; Tessera's is its JWT);
- Tessera only: the refresh_token grant with rotation, from a different load tool (16
  asyncio workers, one refresh chain each, see _refresh.py), on SQLite and — with
  ``--pg-url`` or ``TESSERA_TEST_POSTGRES_URL`` — on PostgreSQL (``--pg-workers`` 2, a
  scratch database), followed in the same run by pgbench's tpcb-like load (same
  connection count and duration) on the same server: the engine's own ceiling;
- the machine's ceiling for the same request shape: a bare Starlette app (_baseline.py)
  on uvicorn with the same worker count, and on granian when it is installed
  (``pip install -e '.[bench]'``), under the same wrk load; every Tessera figure is
  also given as a fraction of it;
- a per-stage breakdown of each request (parse, client authentication, grant logic,
  signing, store, audit, response, framework), in process (_stages.py);
- the server's share: the same identity app, data and load served by granian instead of
  uvicorn (``granian_*`` keys; ``--no-granian`` skips it). A measurement only: ``tessera
  serve`` runs uvicorn with Tessera's connection bounds;
- interleaved rounds of the token endpoint (``--rounds`` 6 of ``--round-seconds`` 5):
  the only part with both servers up, loaded one at a time, alternating, so each
  round's ratio compares the two seconds apart rather than a minute apart (a shared
  VM's speed moves by tens of percent within minutes). ``ratio`` stays the main runs'
  ratio; ``ratio_rounds`` and ``ratio_rounds_median`` are the rounds'.

Every run is bracketed by checks: sample responses must be 200 with a JWT that verifies
against the server's JWKS (or ``"active": true``), wrk must see no errors and no non-2xx,
and for Tessera the audit table must hold one ``token.issued`` per request served.
Server CPU is the server's process tree in cores (1.00 = one core busy), as wrk/lib.sh.
The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote, urlencode

import jwt
from _baseline import server_command
from _peer import CLIENT_ID as PEER_CLIENT_ID
from _peer import CLIENT_SECRET as PEER_CLIENT_SECRET
from _peer import install_peer, peer_version, start_peer
from _pg import run_pgbench, scratch_database
from _procs import CLK_TCK, Procs, Started, box_ticks, free_port, tree_ticks, wait_http
from _refresh import login_chains, run_refresh_load
from _wrk import LoadResult, ensure_wrk, lua_script, run_wrk

REPO = Path(__file__).resolve().parent.parent
RESOURCE_BASE = "https://api.example.internal"
ALG_PATH = {"RS256": "rs256", "ES256": "es256", "EdDSA": "eddsa"}
FORM = "application/x-www-form-urlencoded"
REDIRECT = "http://127.0.0.1/bench-cb"
USERNAME, PASSWORD = "bench-user", "bench-password-0123456789"


class BenchError(RuntimeError):
    pass


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _post(url: str, body: str, auth: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Authorization": auth, "Content-Type": FORM})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"_raw": raw[:200].decode(errors="replace")}


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


# -- checks ----------------------------------------------------------------------------
class Checker:
    """Sample requests that must succeed with the real thing (not an error body)."""

    def __init__(self, base: str, token_path: str, auth: str, token_body: str, *, alg: str,
                 audience: str, issuer: str) -> None:
        self.base, self.token_path, self.auth, self.body = base, token_path, auth, token_body
        self.alg, self.audience, self.issuer = alg, audience, issuer
        self.jwks = jwt.PyJWKSet.from_dict(_get_json(base + "/jwks"))

    def token(self) -> str:
        status, body = _post(self.base + self.token_path, self.body, self.auth)
        if status != 200 or "access_token" not in body:
            raise BenchError(f"token request: {status} {body}")
        token = str(body["access_token"])
        header = jwt.get_unverified_header(token)
        if header.get("alg") != self.alg:
            raise BenchError(f"token alg {header.get('alg')!r}, expected {self.alg}")
        if str(header.get("typ", "")).lower() != "at+jwt":
            raise BenchError(f"token typ {header.get('typ')!r}, expected at+jwt")
        key = self.jwks[str(header["kid"])]
        claims = jwt.decode(token, key.key, algorithms=[self.alg], audience=self.audience,
                            issuer=self.issuer, leeway=60)
        if "api:read" not in str(claims.get("scope", "")).split():
            raise BenchError(f"token scope {claims.get('scope')!r}")
        return token

    def tokens(self, n: int = 5) -> str:
        for _ in range(n):
            self.token()
        return f"{n}/{n} 200 + {self.alg} JWT verified"

    def introspect(self, path: str, body: str, n: int = 5) -> str:
        for _ in range(n):
            status, answer = _post(self.base + path, body, self.auth)
            if status != 200 or answer.get("active") is not True:
                raise BenchError(f"introspection: {status} {answer}")
        return f"{n}/{n} 200 active"


def _require_clean(result: LoadResult) -> None:
    if result.errors or result.non2xx:
        result.ok = False
        result.checks.append(f"FAIL: {result.errors} errors, {result.non2xx} non-2xx")
    if result.requests == 0:
        result.ok = False
        result.checks.append("FAIL: no requests completed")


def _audit_count(db: Path, event: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(con.execute("SELECT count(*) FROM audit_events WHERE event = ?",
                               (event,)).fetchone()[0])
    finally:
        con.close()


# -- Tessera set-up --------------------------------------------------------------------
def _tessera_bin() -> str:
    here = Path(sys.executable).parent / "tessera"
    if here.exists():
        return str(here)
    found = shutil.which("tessera")
    if not found:
        raise SystemExit("the tessera CLI is not installed (make run / pip install -e .)")
    return found


def _cli(tessera: str, env: dict[str, str], cwd: Path, *args: str,
         stdin: str | None = None) -> dict[str, Any]:
    proc = subprocess.run([tessera, *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise BenchError(f"tessera {' '.join(args[:2])} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout))


# -- phases ----------------------------------------------------------------------------
def _quiet(args: argparse.Namespace) -> None:
    """Wait (bounded) until the box is idle, so that another job's load is not measured."""
    deadline = time.monotonic() + args.wait_quiet
    while True:
        b0 = box_ticks()
        time.sleep(0.5)
        b1 = box_ticks()
        tot, idle = b1[0] - b0[0], b1[1] - b0[1]
        busy = 100 * (tot - idle) / tot if tot else 0.0
        if busy < 20 or time.monotonic() >= deadline:
            if busy >= 20:
                print(f"# WARNING: box {busy:.0f}% busy before the run (other jobs)",
                      flush=True)
            return


def _note_other(result: LoadResult) -> LoadResult:
    if result.other_cpu_cores > 0.25:
        result.checks.append(f"WARN: {result.other_cpu_cores:.2f} cores of other load")
    return result


def measure(args: argparse.Namespace, **kw: Any) -> LoadResult:
    _quiet(args)
    return _note_other(run_wrk(**kw))


def _warmup(pid: int, conns: int, url: str, lua: Path, body: str, auth: str,
            seconds: int) -> None:
    if seconds > 0:
        run_wrk(side="-", label="warmup", server_pid=pid, conns=conns, seconds=seconds,
                url=url, lua=lua, body=body, auth=auth)


def bench_peer(args: argparse.Namespace, procs: Procs, lua: Path) -> list[LoadResult]:
    peer_dir = args.peers_dir / "oidc-provider"
    install_peer(peer_dir, args.peer_workdir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    srv = start_peer(procs, args.peer_workdir, port)
    print(f"# peer: {peer_version(args.peer_workdir)}, pid {srv.pid}, {base}", flush=True)
    auth = _basic(PEER_CLIENT_ID, PEER_CLIENT_SECRET)
    audience, body = cc_request(args.algorithm)
    check = Checker(base, "/token", auth, body, alg=args.algorithm, audience=audience,
                    issuer=base)
    results = []
    try:
        check.tokens()
        _warmup(srv.pid, args.conns, base + "/token", lua, body, auth, args.warmup)
        cc = measure(args, side="peer", label=f"POST /token cc JWT {args.algorithm}",
                     server_pid=srv.pid, conns=args.conns, seconds=args.duration,
                     url=base + "/token", lua=lua, body=body, auth=auth)
        _require_clean(cc)
        cc.checks.append(check.tokens())
        results.append(cc)
        _alive(srv)

        # the peer introspects opaque tokens only (structured ones are refused)
        status, answer = _post(base + "/token", "grant_type=client_credentials&scope=api:read",
                               auth)
        if status != 200:
            raise BenchError(f"peer opaque token: {status} {answer}")
        ibody = urlencode({"token": answer["access_token"], "token_type_hint": "access_token"})
        check.introspect("/token/introspection", ibody)
        intro = measure(args, side="peer", label="POST /token/introspection (opaque)",
                        server_pid=srv.pid, conns=args.conns, seconds=args.duration,
                        url=base + "/token/introspection", lua=lua, body=ibody, auth=auth)
        _require_clean(intro)
        intro.checks.append(check.introspect("/token/introspection", ibody))
        results.append(intro)
        _alive(srv)
    finally:
        procs.stop(srv)
    return results


def bench_rounds(args: argparse.Namespace, procs: Procs, lua: Path, tmp: Path,
                 env: dict[str, str], client: dict[str, Any]) -> list[dict[str, Any]]:
    """The token endpoint's ratio in interleaved rounds: the peer and Tessera both
    serving, ``--round-seconds`` runs alternating between them (order swapped each
    round), ``--rounds`` times. A shared VM's speed moves by tens of percent within
    minutes, and the main runs measure the two sides a minute apart; a round measures
    them seconds apart, so the median of the rounds' ratios is the steadier figure."""
    peer_port, port = free_port(), int(env["TESSERA_BENCH_PORT"])
    _, body = cc_request(args.algorithm)
    peer = start_peer(procs, args.peer_workdir, peer_port)
    srv = procs.start("tessera-rounds", [_tessera_bin(), "serve", "--host", "127.0.0.1",
                                         "--port", str(port), "--workers", str(args.workers)],
                      env=env, cwd=tmp, log=tmp / "tessera-rounds.log")
    sides = {"peer": (peer, f"http://127.0.0.1:{peer_port}/token",
                      _basic(PEER_CLIENT_ID, PEER_CLIENT_SECRET)),
             "tessera": (srv, f"http://127.0.0.1:{port}/token",
                         _basic(client["client_id"], client["client_secret"]))}
    rounds: list[dict[str, Any]] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", srv, timeout=60)
        for started, url, auth in sides.values():
            _warmup(started.pid, args.conns, url, lua, body, auth, args.warmup)
        for i in range(args.rounds):
            order = ("peer", "tessera") if i % 2 == 0 else ("tessera", "peer")
            runs: dict[str, LoadResult] = {}
            for name in order:
                started, url, auth = sides[name]
                runs[name] = run_wrk(side=name, label=f"round {i + 1}", server_pid=started.pid,
                                     conns=args.conns, seconds=args.round_seconds, url=url,
                                     lua=lua, body=body, auth=auth)
                _require_clean(runs[name])
                _alive(started)
            t, p = runs["tessera"], runs["peer"]
            rounds.append({"tessera_rps": round(t.rps, 1), "peer_rps": round(p.rps, 1),
                           "ratio": round(t.rps / p.rps, 3) if p.rps else None,
                           "tessera_cpu_us_per_req": t.cpu_us_per_req,
                           "peer_cpu_us_per_req": p.cpu_us_per_req})
            print(f"# round {i + 1}: tessera {t.rps:7.0f} req/s ({t.cpu_us_per_req:.0f} µs), "
                  f"peer {p.rps:7.0f} req/s ({p.cpu_us_per_req:.0f} µs): "
                  f"{rounds[-1]['ratio']}x", flush=True)
    finally:
        procs.stop(srv)
        procs.stop(peer)
    return rounds


def _alive(srv: Started) -> None:
    if srv.proc.poll() is not None:
        raise BenchError(f"{srv.name} died during the run:\n{srv.log_tail()}")


def cc_request(algorithm: str) -> tuple[str, str]:
    """The audience of ``algorithm``'s tokens and the client_credentials form body that
    asks for it (the same on both sides)."""
    audience = f"{RESOURCE_BASE}/{ALG_PATH[algorithm]}"
    body = f"grant_type=client_credentials&scope=api:read&resource={quote(audience, safe='')}"
    return audience, body


def setup_tessera(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, str], dict[str, Any]]:
    port = free_port()
    env = {**os.environ, "TESSERA_DATA_DIR": str(tmp / "data"),
           "TESSERA_ISSUER": f"http://127.0.0.1:{port}",
           "TESSERA_KEYS__ALGORITHM": args.algorithm, "TESSERA_BENCH_PORT": str(port)}
    env.pop("TESSERA_DATABASE_URL", None)
    tessera = _tessera_bin()
    audience = f"{RESOURCE_BASE}/{ALG_PATH[args.algorithm]}"
    # client_credentials + refresh_token as asked; authorization_code (and a redirect URI)
    # too, so that refresh chains can be obtained by logging in.
    client = _cli(tessera, env, tmp, "clients", "create", "--name", "bench",
                  "--grant", "client_credentials", "--grant", "refresh_token",
                  "--grant", "authorization_code", "--redirect-uri", REDIRECT,
                  "--scope", "api:read api:write", "--audience", audience)
    _cli(tessera, env, tmp, "users", "create", "--username", USERNAME, "--password-stdin",
         stdin=PASSWORD + "\n")
    return env, client


def bench_tessera(args: argparse.Namespace, procs: Procs, lua: Path, tmp: Path,
                  env: dict[str, str], client: dict[str, Any]) -> list[LoadResult]:
    port = int(env["TESSERA_BENCH_PORT"])
    base = f"http://127.0.0.1:{port}"
    log = tmp / "tessera-serve.log"
    srv = procs.start("tessera", [_tessera_bin(), "serve", "--host", "127.0.0.1", "--port",
                                  str(port), "--workers", str(args.workers)],
                      env=env, cwd=tmp, log=log)
    wait_http(base + "/healthz", srv, timeout=60)
    time.sleep(0.5)  # let every worker finish its start-up
    print(f"# tessera: pid {srv.pid}, {args.workers} worker(s), {base}, "
          f"SQLite in {tmp / 'data'}, log {log}", flush=True)
    db = tmp / "data" / "tessera.db"
    auth = _basic(client["client_id"], client["client_secret"])
    audience, body = cc_request(args.algorithm)
    check = Checker(base, "/token", auth, body, alg=args.algorithm, audience=audience,
                    issuer=base)
    results = []
    try:
        check.tokens()
        _warmup(srv.pid, args.conns, base + "/token", lua, body, auth, args.warmup)
        time.sleep(1.0)  # the warm-up's in-flight requests commit their audit rows
        issued0, lines0 = _audit_count(db, "token.issued"), _count_lines(log)
        cc = measure(args, side="tessera", label=f"POST /token cc JWT {args.algorithm}",
                     server_pid=srv.pid, conns=args.conns, seconds=args.duration,
                     url=base + "/token", lua=lua, body=body, auth=auth)
        time.sleep(1.0)  # likewise for the requests still in flight when wrk stopped
        issued = _audit_count(db, "token.issued") - issued0
        cc.extra["audit_json_lines"] = _count_lines(log) - lines0
        cc.extra["audit_token_issued"] = issued
        _require_clean(cc)
        # every served request was a real issuance (in flight at the end: up to conns more)
        if cc.requests <= issued <= cc.requests + cc.conns:
            cc.checks.append(f"audit: {issued} token.issued")
        else:
            cc.ok = False
            cc.checks.append(f"FAIL: audit has {issued} token.issued for {cc.requests} requests")
        cc.checks.append(check.tokens())
        results.append(cc)
        _alive(srv)

        ibody = urlencode({"token": check.token(), "token_type_hint": "access_token"})
        check.introspect("/introspect", ibody)
        intro = measure(args, side="tessera", label="POST /introspect (JWT)", server_pid=srv.pid,
                        conns=args.conns, seconds=args.duration, url=base + "/introspect",
                        lua=lua, body=ibody, auth=auth)
        _require_clean(intro)
        intro.checks.append(check.introspect("/introspect", ibody))
        results.append(intro)
        _alive(srv)

        if not args.no_refresh:
            results.append(_refresh_run(args, srv, base, port, client, audience, check))
            _alive(srv)
    finally:
        procs.stop(srv)
    return results


def bench_tessera_granian(args: argparse.Namespace, procs: Procs, lua: Path,
                          env: dict[str, str], client: dict[str, Any], tmp: Path
                          ) -> list[LoadResult]:
    """What the server costs: the same identity app (same data directory, client and
    load, ``--workers`` workers) served by granian instead of ``tessera serve``'s
    uvicorn. A measurement, not a supported deployment: ``tessera serve`` runs uvicorn
    with Tessera's connection bounds (``tessera.httpserver``), which granian lacks."""
    cmd = server_command("granian", 0, 1)
    if cmd is None:
        print("# tessera on granian: granian not installed, skipped", flush=True)
        return []
    port = int(env["TESSERA_BENCH_PORT"])
    base = f"http://127.0.0.1:{port}"
    srv = procs.start("tessera-granian", [
        cmd[0], "--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port",
        str(port), "--workers", str(args.workers), "--no-access-log", "--log-level",
        "warning", "tessera.identity.app:create_app"], env=env, cwd=tmp,
        log=tmp / "tessera-granian.log")
    auth = _basic(client["client_id"], client["client_secret"])
    audience, body = cc_request(args.algorithm)
    results = []
    try:
        wait_http(base + "/healthz", srv, timeout=90)
        time.sleep(0.5)
        check = Checker(base, "/token", auth, body, alg=args.algorithm, audience=audience,
                        issuer=base)
        check.tokens()
        _warmup(srv.pid, args.conns, base + "/token", lua, body, auth, args.warmup)
        cc = measure(args, side="granian", label=f"POST /token cc JWT {args.algorithm}",
                     server_pid=srv.pid, conns=args.conns, seconds=args.duration,
                     url=base + "/token", lua=lua, body=body, auth=auth)
        _require_clean(cc)
        cc.checks.append(check.tokens())
        results.append(cc)
        ibody = urlencode({"token": check.token(), "token_type_hint": "access_token"})
        intro = measure(args, side="granian", label="POST /introspect (JWT)",
                        server_pid=srv.pid, conns=args.conns, seconds=args.duration,
                        url=base + "/introspect", lua=lua, body=ibody, auth=auth)
        _require_clean(intro)
        intro.checks.append(check.introspect("/introspect", ibody))
        results.append(intro)
        _alive(srv)
    finally:
        procs.stop(srv)
    return results


def bench_tessera_pg(args: argparse.Namespace, procs: Procs, tmp: Path) -> list[LoadResult]:
    """Refresh rotation on PostgreSQL (``--pg-workers`` workers, a scratch database),
    then pgbench tpcb-like on the same server: the engine's ceiling, same run."""
    results = []
    with scratch_database(args.pg_url, "tessera_bench") as url:
        port = free_port()
        data = tmp / "pg-data"
        env = {**os.environ, "TESSERA_DATA_DIR": str(data), "TESSERA_DATABASE_URL": url,
               "TESSERA_ISSUER": f"http://127.0.0.1:{port}",
               "TESSERA_KEYS__ALGORITHM": args.algorithm,
               "TESSERA_KEYS__ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32))
               .rstrip(b"=").decode()}
        tessera = _tessera_bin()
        subprocess.run([tessera, "db", "upgrade"], env=env, cwd=tmp, check=True,
                       capture_output=True, timeout=120)
        audience, body = cc_request(args.algorithm)
        client = _cli(tessera, env, tmp, "clients", "create", "--name", "bench",
                      "--grant", "refresh_token", "--grant", "authorization_code",
                      "--grant", "client_credentials", "--redirect-uri", REDIRECT,
                      "--scope", "api:read api:write", "--audience", audience)
        _cli(tessera, env, tmp, "users", "create", "--username", USERNAME,
             "--password-stdin", stdin=PASSWORD + "\n")
        base = f"http://127.0.0.1:{port}"
        log = tmp / "tessera-serve-pg.log"
        srv = procs.start("tessera-pg", [tessera, "serve", "--host", "127.0.0.1", "--port",
                                         str(port), "--workers", str(args.pg_workers)],
                          env=env, cwd=tmp, log=log)
        try:
            wait_http(base + "/healthz", srv, timeout=120)  # a loaded box starts slowly
            time.sleep(0.5)
            print(f"# tessera on PostgreSQL: pid {srv.pid}, {args.pg_workers} worker(s)",
                  flush=True)
            auth = _basic(client["client_id"], client["client_secret"])
            check = Checker(base, "/token", auth, body, alg=args.algorithm,
                            audience=audience, issuer=base)
            results.append(_refresh_run(args, srv, base, port, client, audience, check,
                                        label="POST /token refresh_token (PostgreSQL)"))
            _alive(srv)
        finally:
            procs.stop(srv)
    with scratch_database(args.pg_url, "tessera_pgbench") as url:
        _quiet(args)
        b0, t0 = box_ticks(), time.monotonic()
        pg = run_pgbench(url, clients=args.conns, threads=2, seconds=args.duration)
        b1 = box_ticks()
        tot, idle = b1[0] - b0[0], b1[1] - b0[1]
        results.append(LoadResult(
            side="pg", label="pgbench tpcb-like (same server)", tool="pgbench -j2",
            conns=pg.clients, requests=pg.transactions,
            duration_s=round(time.monotonic() - t0, 2), rps=pg.tps, p50_ms=pg.latency_ms,
            p99_ms=0.0, max_ms=0.0, errors=0, non2xx=0, server_cpu_cores=0.0,
            box_busy_pct=round(100 * (tot - idle) / tot, 1) if tot else 0.0,
            client_cpu_cores=0.0, checks=[f"latency avg {pg.latency_ms:.2f} ms"]))
    return results


def bench_baseline(args: argparse.Namespace, procs: Procs, lua: Path, tmp: Path
                   ) -> list[LoadResult]:
    """The bare-probe ceiling: the same wrk load (token body, Basic auth) on a trivial
    Starlette app, uvicorn and granian, ``--workers`` workers each."""
    results = []
    body = "grant_type=client_credentials&scope=api:read"
    auth = _basic("probe", "probe")
    for server in ("uvicorn", "granian"):
        port = free_port()
        cmd = server_command(server, port, args.workers)
        if cmd is None:
            print(f"# bare probe: {server} not installed, skipped", flush=True)
            continue
        srv = procs.start(f"probe-{server}", cmd, env=dict(os.environ), cwd=tmp,
                          log=tmp / f"probe-{server}.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", srv, timeout=30)
            _warmup(srv.pid, args.conns, f"http://127.0.0.1:{port}/token", lua, body, auth,
                    min(args.warmup, 2))
            probe = measure(args, side="probe", label=f"bare Starlette POST ({server})",
                            server_pid=srv.pid, conns=args.conns, seconds=args.duration,
                            url=f"http://127.0.0.1:{port}/token", lua=lua, body=body,
                            auth=auth)
            _require_clean(probe)
            results.append(probe)
        finally:
            procs.stop(srv)
    return results


def stage_breakdown(args: argparse.Namespace) -> dict[str, Any] | None:
    """_stages.py in a subprocess (its own data dir and environment)."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "_stages.py"),
                           "--algorithm", args.algorithm, "-n", str(args.stages_n)],
                          capture_output=True, text=True, timeout=600, check=False,
                          cwd=REPO / "bench")
    if proc.returncode != 0:
        print(f"# stage breakdown failed:\n{proc.stderr[-1500:]}", file=sys.stderr)
        return None
    stages = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.pg_url and not args.no_pg and not args.no_refresh:
        pg = _refresh_stages_pg(args)
        if pg is not None:
            stages["refresh_token_pg"] = pg
    return stages


def _refresh_stages_pg(args: argparse.Namespace) -> dict[str, Any] | None:
    """The refresh row again on PostgreSQL (a scratch database: _stages.py --pg-url)."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "_stages.py"),
                           "--algorithm", args.algorithm, "-n", str(args.stages_n),
                           "--only", "refresh_token", "--pg-url", args.pg_url],
                          capture_output=True, text=True, timeout=600, check=False,
                          cwd=REPO / "bench")
    if proc.returncode != 0:
        print(f"# stage breakdown on PostgreSQL failed:\n{proc.stderr[-1500:]}",
              file=sys.stderr)
        return None
    row = json.loads(proc.stdout.strip().splitlines()[-1]).get("refresh_token")
    return dict(row) if isinstance(row, dict) else None


def print_stages(stages: dict[str, Any]) -> None:
    print(f"per-stage breakdown, in process, one request at a time ({stages['store']}, "
          f"{stages['algorithm']}; µs of wall time per request):")
    for name in ("client_credentials", "introspect", "refresh_token", "refresh_token_pg"):
        row = stages.get(name)
        if isinstance(row, dict):
            parts = ", ".join(f"{k} {v:.0f}" for k, v in row.items() if k != "total")
            print(f"  {name:20s} total {row['total']:7.0f}: {parts}")
    print(f"  introspection answered from the in-memory revocation state: "
          f"{stages.get('introspect_from_memory')}")
    print()


def _biggest(stages: dict[str, Any] | None, name: str) -> str:
    row = (stages or {}).get(name)
    if not isinstance(row, dict):
        return "no stage breakdown"
    top = sorted(((v, k) for k, v in row.items() if k != "total"), reverse=True)[:2]
    return ", ".join(f"{k} {v:.0f} µs" for v, k in top) + f" of {row['total']:.0f} µs"


def print_targets(out: dict[str, Any]) -> None:
    """Each issue-15 target: met or not, and the stage that holds it back."""
    stages = out.get("stages_us")
    rows = [
        ("token endpoint >= 2x peer", out.get("ratio"), 2.0, "client_credentials"),
        ("  the same, median of rounds", out.get("ratio_rounds_median"), 2.0,
         "client_credentials"),
        ("introspection >= 2x peer", out.get("introspect_ratio"), 2.0, "introspect"),
        ("refresh on PostgreSQL >= 1000/s", out.get("refresh_pg_rps"), 1000.0,
         "refresh_token_pg"),
        ("refresh >= 50% of pgbench TPS", out.get("refresh_pg_of_pgbench"), 0.5,
         "refresh_token_pg"),
    ]
    print("targets:")
    for label, value, goal, stage in rows:
        if value is None:
            print(f"  {label:34s} not measured")
            continue
        verdict = "met" if value >= goal else "MISSED"
        print(f"  {label:34s} {value:9.2f} {verdict}; largest stages: "
              f"{_biggest(stages, stage)}")
    p99 = out.get("p99_ms")
    if p99 is not None:
        print(f"  {'token endpoint p99 <= 10 ms':34s} {p99:9.2f} "
              f"{'met' if p99 <= 10 else 'MISSED'}")
    for key, label in (("granian_ratio", "token endpoint on granian vs peer"),
                       ("granian_introspect_ratio", "introspection on granian vs peer")):
        if out.get(key) is not None:
            print(f"  {label:34s} {out[key]:9.2f} (the same app, the server swapped)")
    for key in ("tessera_of_probe", "introspect_of_probe", "refresh_of_probe",
                "peer_of_probe"):
        if out.get(key) is not None:
            print(f"  {key:34s} {out[key]:9.3f} of the bare uvicorn probe")
    print()


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return 0


def _refresh_run(args: argparse.Namespace, srv: Started, base: str, port: int,
                 client: dict[str, Any], audience: str, check: Checker,
                 label: str = "POST /token refresh_token (rotating)") -> LoadResult:
    chains = asyncio.run(login_chains(
        base, count=args.conns, client_id=client["client_id"], secret=client["client_secret"],
        redirect=REDIRECT, username=USERNAME, password=PASSWORD, scope="api:read",
        resource=audience))
    _quiet(args)
    s0, b0, t0 = tree_ticks(srv.pid), box_ticks(), time.monotonic()
    stats = asyncio.run(run_refresh_load("127.0.0.1", port, chains,
                                         client_id=client["client_id"],
                                         secret=client["client_secret"],
                                         seconds=args.duration))
    s1, b1, t1 = tree_ticks(srv.pid), box_ticks(), time.monotonic()
    wall = t1 - t0
    lat = sorted(stats.latencies)

    def pct(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else 0.0

    tot, idle = b1[0] - b0[0], b1[1] - b0[1]
    result = LoadResult(
        side="tessera", label=label,
        tool="asyncio x16 chains", conns=len(chains), requests=len(lat),
        duration_s=round(stats.elapsed_s, 2), rps=stats.ok / stats.elapsed_s,
        p50_ms=pct(50), p99_ms=pct(99), max_ms=1000 * lat[-1] if lat else 0.0,
        errors=stats.errors, non2xx=stats.non2xx,
        server_cpu_cores=round((s1 - s0) / CLK_TCK / wall, 2),
        box_busy_pct=round(100 * (tot - idle) / tot, 1) if tot else 0.0,
        client_cpu_cores=round(stats.client_cpu_s / stats.elapsed_s, 2),
        extra={"statuses": stats.statuses, "mean_ms": 1000 * statistics.fmean(lat) if lat
               else 0.0},
    )
    _require_clean(result)
    if stats.broken_chains or stats.bad_bodies:
        result.ok = False
        result.checks.append(f"FAIL: {stats.broken_chains} chains ended early "
                             f"({stats.timeouts} timeouts), {stats.bad_bodies} bad bodies")
    bad = 0
    for sample in stats.samples:
        try:
            header = jwt.get_unverified_header(sample["access_token"])
            key = check.jwks[str(header["kid"])]
            jwt.decode(sample["access_token"], key.key, algorithms=[check.alg],
                       audience=audience, issuer=check.issuer, leeway=60)
        except (jwt.PyJWTError, KeyError):
            bad += 1
    if bad or not stats.samples:
        result.ok = False
        result.checks.append(f"FAIL: {bad}/{len(stats.samples)} sampled JWTs did not verify")
    else:
        result.checks.append(f"{len(stats.samples)} sampled: 200 + rotated RT + JWT verified")
    return _note_other(result)


# -- output ----------------------------------------------------------------------------
def print_table(results: list[LoadResult]) -> None:
    head = (f"{'side':8s} {'scenario':38s} {'load tool':19s} {'conns':>5s} {'req/s':>8s} "
            f"{'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} {'errors':>6s} {'non2xx':>6s} "
            f"{'srvCPU':>6s} {'µs/req':>6s} {'genCPU':>6s} {'other':>5s}  checks")
    print()
    print(head)
    print("-" * len(head))
    for r in results:
        print(f"{r.side:8s} {r.label:38s} {r.tool:19s} {r.conns:5d} {r.rps:8.0f} "
              f"{r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.max_ms:7.1f} {r.errors:6d} {r.non2xx:6d} "
              f"{r.server_cpu_cores:6.2f} {r.cpu_us_per_req:6.0f} {r.client_cpu_cores:6.2f} "
              f"{r.other_cpu_cores:5.2f}  "
              f"{'; '.join(r.checks)}")
    print("srvCPU: the server's process tree, genCPU: the load generator, other: the rest "
          "of the box (other jobs), all in cores; µs/req: server CPU per request; "
          "non2xx: status >= 400")
    print()


def _find(results: list[LoadResult], side: str, prefix: str) -> LoadResult | None:
    return next((r for r in results if r.side == side and r.label.startswith(prefix)), None)


def summary(args: argparse.Namespace, results: list[LoadResult]) -> dict[str, Any]:
    t_cc = _find(results, "tessera", "POST /token cc")
    p_cc = _find(results, "peer", "POST /token cc")
    t_in = _find(results, "tessera", "POST /introspect")
    p_in = _find(results, "peer", "POST /token/introspection")
    t_rt = _find(results, "tessera", "POST /token refresh_token (rotating)")
    t_pg = _find(results, "tessera", "POST /token refresh_token (PostgreSQL)")
    pgb = _find(results, "pg", "pgbench")
    probe = _find(results, "probe", "bare Starlette POST (uvicorn)")
    granian = _find(results, "probe", "bare Starlette POST (granian)")
    g_cc = _find(results, "granian", "POST /token cc")
    g_in = _find(results, "granian", "POST /introspect")

    def r1(x: float | None) -> float | None:
        return None if x is None else round(x, 1)

    def r2(x: float | None) -> float | None:
        return None if x is None else round(x, 2)

    out = {
        "tessera_rps": r1(t_cc.rps) if t_cc else None,
        "peer_rps": r1(p_cc.rps) if p_cc else None,
        "ratio": round(t_cc.rps / p_cc.rps, 3) if t_cc and p_cc and p_cc.rps else None,
        "p99_ms": r2(t_cc.p99_ms) if t_cc else None,
        "peer_p99_ms": r2(p_cc.p99_ms) if p_cc else None,
        "introspect_rps": r1(t_in.rps) if t_in else None,
        "peer_introspect_rps": r1(p_in.rps) if p_in else None,
        "refresh_rps": r1(t_rt.rps) if t_rt else None,
        "refresh_p99_ms": r2(t_rt.p99_ms) if t_rt else None,
        "workers": args.workers,
        "algorithm": args.algorithm,
        "duration_s": args.duration,
        "conns": args.conns,
        "tessera_cpu_cores": t_cc.server_cpu_cores if t_cc else None,
        "peer_cpu_cores": p_cc.server_cpu_cores if p_cc else None,
        "tessera_cpu_us_per_req": t_cc.cpu_us_per_req if t_cc else None,
        "peer_cpu_us_per_req": p_cc.cpu_us_per_req if p_cc else None,
        "other_cpu_cores_max": max((r.other_cpu_cores for r in results), default=None),
        "checks_ok": all(r.ok for r in results),
        "refresh_pg_rps": r1(t_pg.rps) if t_pg else None,
        "refresh_pg_p99_ms": r2(t_pg.p99_ms) if t_pg else None,
        "pgbench_tps": r1(pgb.rps) if pgb else None,
        "refresh_pg_of_pgbench": round(t_pg.rps / pgb.rps, 3) if t_pg and pgb and pgb.rps
        else None,
        "pg_workers": args.pg_workers if t_pg else None,
        "probe_rps": r1(probe.rps) if probe else None,
        "probe_granian_rps": r1(granian.rps) if granian else None,
        "granian_tessera_rps": r1(g_cc.rps) if g_cc else None,
        "granian_tessera_p99_ms": r2(g_cc.p99_ms) if g_cc else None,
        "granian_introspect_rps": r1(g_in.rps) if g_in else None,
        "granian_ratio": round(g_cc.rps / p_cc.rps, 3) if g_cc and p_cc and p_cc.rps
        else None,
        "granian_introspect_ratio": round(g_in.rps / p_in.rps, 3) if g_in and p_in
        and p_in.rps else None,
    }
    if probe and probe.rps:
        for key, r in (("tessera_of_probe", t_cc), ("introspect_of_probe", t_in),
                       ("refresh_of_probe", t_rt), ("peer_of_probe", p_cc)):
            out[key] = round(r.rps / probe.rps, 3) if r else None
    if p_in and t_in and p_in.rps:
        out["introspect_ratio"] = round(t_in.rps / p_in.rps, 3)
    return out


# -- main ------------------------------------------------------------------------------
def _on_signal(signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--duration", type=int, default=20, help="seconds per measured run (20)")
    p.add_argument("--warmup", type=int, default=3, help="unreported warm-up seconds (3)")
    p.add_argument("--conns", type=int, default=16, help="connections / workers (16)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="tessera serve --workers (default: cpu count)")
    p.add_argument("--algorithm", choices=sorted(ALG_PATH), default="ES256",
                   help="access token algorithm on both sides (ES256, the default)")
    p.add_argument("--pg-url", default=os.environ.get("TESSERA_BENCH_POSTGRES_URL")
                   or os.environ.get("TESSERA_TEST_POSTGRES_URL"),
                   help="PostgreSQL server for the refresh run and pgbench (a scratch "
                        "database is created and dropped); default "
                        "$TESSERA_BENCH_POSTGRES_URL or $TESSERA_TEST_POSTGRES_URL")
    p.add_argument("--pg-workers", type=int, default=2, help="workers on PostgreSQL (2)")
    p.add_argument("--no-pg", action="store_true", help="skip PostgreSQL and pgbench")
    p.add_argument("--no-probe", action="store_true", help="skip the bare-probe ceiling")
    p.add_argument("--no-granian", action="store_true",
                   help="skip Tessera's app served by granian (the server's share)")
    p.add_argument("--no-stages", action="store_true", help="skip the stage breakdown")
    p.add_argument("--stages-n", type=int, default=1000,
                   help="requests per endpoint for the stage breakdown (1000)")
    p.add_argument("--no-peer", action="store_true", help="skip node-oidc-provider")
    p.add_argument("--no-refresh", action="store_true", help="skip the refresh_token run")
    p.add_argument("--rounds", type=int, default=6,
                   help="interleaved rounds of the token endpoint, peer and Tessera "
                        "alternating (6; 0 skips them)")
    p.add_argument("--round-seconds", type=int, default=5, help="seconds per round run (5)")
    p.add_argument("--peers-dir", type=Path,
                   default=Path(os.environ.get("TESSERA_PEERS_DIR",
                                               REPO.parent / "shared" / "peers")),
                   help="shared/peers (default: ../shared/peers from the repo root)")
    p.add_argument("--peer-workdir", type=Path,
                   default=Path(tempfile.gettempdir()) / "tessera-peer" / "oidc-provider",
                   help="scratch folder for npm ci (kept between runs)")
    p.add_argument("--wait-quiet", type=float, default=10.0,
                   help="before each run, wait up to this many seconds for an idle box (10)")
    p.add_argument("--results", type=Path, default=None, help="also write JSON lines here")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite)")
    args = p.parse_args(argv)
    if not 0 <= args.rounds <= 30 or not 1 <= args.round_seconds <= 60:
        p.error("--rounds must be 0..30 and --round-seconds 1..60")
    if not 1 <= args.duration <= 120 or not 0 <= args.warmup <= 30:
        p.error("--duration must be 1..120 and --warmup 0..30")
    if not 1 <= args.conns <= 256 or not 1 <= args.workers <= 16:
        p.error("--conns must be 1..256 and --workers 1..16")
    try:
        args.peer_workdir.resolve().relative_to(REPO)
    except ValueError:
        pass
    else:
        p.error("--peer-workdir must be outside the repository")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_wrk()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a background
        signal.signal(sig, _on_signal)                          # job may start with it ignored
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    started = time.monotonic()
    results: list[LoadResult] = []
    rounds: list[dict[str, Any]] = []
    try:
        lua = lua_script(args.peers_dir / "wrk" / "req.lua", tmp)
        print(f"# token endpoint bench: {os.cpu_count()} cores, wrk -t1 -c{args.conns}, "
              f"{args.duration}s per run (+{args.warmup}s warm-up), {args.algorithm}, "
              f"tessera --workers {args.workers}; lua {lua}", flush=True)
        env, client = setup_tessera(args, tmp)
        if not args.no_probe:
            results += bench_baseline(args, procs, lua, tmp)
        if not args.no_peer:
            results += bench_peer(args, procs, lua)
        results += bench_tessera(args, procs, lua, tmp, env, client)
        if not args.no_peer and args.rounds > 0:
            rounds = bench_rounds(args, procs, lua, tmp, env, client)
        if not args.no_granian:
            results += bench_tessera_granian(args, procs, lua, env, client, tmp)
        if args.pg_url and not args.no_pg and not args.no_refresh:
            results += bench_tessera_pg(args, procs, tmp)
        stages = None if args.no_stages else stage_breakdown(args)
    except KeyboardInterrupt:
        print("\n# interrupted: stopping servers", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"# bench failed: {exc}", file=sys.stderr)
        if results:
            print_table(results)
        return 1
    finally:
        procs.stop_all()
        if args.keep:
            print(f"# kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(results)
    if stages:
        print_stages(stages)
    t_cc = _find(results, "tessera", "POST /token cc")
    p_cc = _find(results, "peer", "POST /token cc")
    if t_cc and p_cc:
        print(f"client_credentials {args.algorithm} @c{args.conns}: tessera/peer = "
              f"{t_cc.rps / p_cc.rps:.2f}x (target >= 2x); tessera p99 {t_cc.p99_ms:.2f} ms "
              f"(target < 10 ms); server CPU {t_cc.server_cpu_cores:.2f} vs "
              f"{p_cc.server_cpu_cores:.2f} cores")
    if t_cc:
        print(f"tessera audit: {t_cc.extra.get('audit_token_issued')} token.issued rows, "
              f"{t_cc.extra.get('audit_json_lines')} JSON audit lines on stderr")
    print(f"total {time.monotonic() - started:.0f}s")
    out = summary(args, results)
    if rounds:
        ratios = [r["ratio"] for r in rounds if r["ratio"] is not None]
        out["ratio_rounds"] = ratios
        out["ratio_rounds_median"] = round(statistics.median(ratios), 3) if ratios else None
        out["rounds"] = rounds
    if stages:
        out["stages_us"] = {k: v for k, v in stages.items() if isinstance(v, dict)}
    print_targets(out)
    if args.results:
        with args.results.open("a") as fh:
            for r in results:
                fh.write(json.dumps(r.as_json()) + "\n")
            fh.write(json.dumps(out) + "\n")
    print(json.dumps(out), flush=True)
    return 0 if out["checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
