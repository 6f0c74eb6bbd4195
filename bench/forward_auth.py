"""Edge gateway benchmark: decision latency at 1k req/s and the maximum rate, with the
verifier's revocation state holding 1k, 100k and 1M live-session entries.

    python bench/forward_auth.py            # ~1 minute
    python bench/forward_auth.py --quick    # smaller, for a smoke run

Self-contained: an RS256 key made here signs the tokens (the identity service's default
algorithm); the JWKS is served by ``httpx.MockTransport``; no revocation feed
(``source=none``) — the state is filled directly with ``RevocationState.apply`` events:
one ``session.version_bumped`` per live session (what a verifier holds for every session
whose version ever changed) and one ``session.revoked`` per 100 sessions.

The decision endpoint is the real gateway app (``create_gateway``: Starlette, the
``/forward-auth`` adapter, policy match, SDK verification, decision log to a file handler
on ``/dev/null``, metrics), called in-process as ASGI with nginx ``auth_request`` headers;
no sockets, so the figures are the gateway's own cost.

- **paced**: open loop at 1,000 req/s for ``--seconds``; latency is measured from each
  request's *scheduled* start (a late start counts against it: no coordinated omission).
  Tokens: a pool of 1,000 tokens of random live sessions (5 % with an outdated ``sv``, so
  refused with 401), presented over and over as clients do — the verified-token cache
  holds their signature results, every other check runs each time.
- **cold**: the first presentation of each token (RSA signature verification included).
- **max**: closed loop, one request after the other, for 2 s: the most one process does.

Then over HTTP, at the largest size: the same app under uvicorn (httptools, one worker) in
a subprocess, driven from here over keep-alive connections — paced at 1,000 req/s on one
connection (blocking socket, spin-paced, latency from the scheduled start) and closed-loop
on 8 connections for the maximum rate; then the bare probe (``_baseline.py`` on the same
server, one worker, the same requests and closed loop): the machine's ceiling for this
request shape, so the max rate is also given as a fraction of it (``max_of_probe``).
``--no-http`` skips it.

The last line is one JSON object: ``p99_ms`` (paced at 1k req/s with 1M sessions) and
``max_rps`` — over HTTP when that part ran (``mode`` says which), with the in-process
figures beside them (``inprocess_*``) and per size (``by_sessions``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from prometheus_client import CollectorRegistry

from tessera.core.clock import SystemClock
from tessera.gateway import Authorizer, create_gateway, parse_policy
from tessera.verifier.settings import VerifierSettings

ISSUER = "https://id.tessera.example"
AUDIENCE = "https://api.example"
SIZES = (1_000, 100_000, 1_000_000)
RATE = 1_000
POOL = 1_000
STALE_SHARE = 0.05
POLICY = {
    "acr_levels": ["urn:tessera:acr:pwd", "urn:tessera:acr:mfa"],
    "routes": [
        {"match": {"path": "/healthz"}, "public": True},
        {"match": {"host": "api.example", "path": "/admin/**"}, "audience": AUDIENCE,
         "scopes": ["orders:admin"], "acr": "urn:tessera:acr:mfa", "strict": True},
        {"match": {"host": "api.example", "path": "/orders/**", "methods": ["POST"]},
         "audience": AUDIENCE, "scopes": ["orders:write"]},
        {"match": {"host": "api.example", "path": "/orders/**", "methods": ["GET"]},
         "audience": AUDIENCE, "scopes": ["orders:read"]},
    ],
}


class Bench:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": "rs-1", "alg": "RS256", "use": "sig"})
        jwks = {"keys": [jwk]}
        transport = httpx.MockTransport(lambda request: httpx.Response(200, json=jwks))
        settings = VerifierSettings(issuer=ISSUER, audience="tessera-gateway", source="none",
                                    startup_wait=0)
        self.clock = SystemClock()
        self.app = create_gateway(parse_policy(POLICY), settings, clock=self.clock,
                                  transport=transport, registry=CollectorRegistry())
        self.authorizer: Authorizer = self.app.state.tessera_gateway
        self.sessions = 0
        self.seq = 0

    def grow(self, sessions: int) -> float:
        """Add live-session entries up to ``sessions``; seconds taken."""
        state = self.authorizer.service.state
        now = self.clock.now()
        started = time.perf_counter()
        for i in range(self.sessions, sessions):
            self.seq += 1
            state.apply({"seq": self.seq, "kind": "session.version_bumped", "key": f"sid-{i}",
                         "at": now, "expires_at": now + 3600, "data": {"sv": 2}})
            if i % 100 == 99:
                self.seq += 1
                state.apply({"seq": self.seq, "kind": "session.revoked",
                             "key": f"sid-{i}", "at": now, "expires_at": now + 3600})
        state.confirm(self.clock.now())
        self.sessions = sessions
        return time.perf_counter() - started

    def tokens(self, count: int, rng: random.Random) -> list[str]:
        now = int(self.clock.now())
        out = []
        for n in range(count):
            i = rng.randrange(self.sessions)
            sv = 1 if rng.random() < STALE_SHARE else 2
            claims = {"iss": ISSUER, "sub": f"user-{i}", "aud": [AUDIENCE], "exp": now + 900,
                      "iat": now, "jti": f"j-{self.sessions}-{n}", "client_id": "web",
                      "scope": "openid orders:read orders:write", "sid": f"sid-{i}",
                      "sv": sv, "tid": "tenant-1", "acr": "urn:tessera:acr:pwd",
                      "amr": ["pwd"], "auth_time": now - 60}
            out.append(jwt.encode(claims, self.key, algorithm="RS256",
                                  headers={"kid": "rs-1", "typ": "at+jwt"}))
        return out


def scope_for(token: str, n: int) -> dict[str, Any]:
    headers = [(b"host", b"api.example"), (b"x-original-method", b"GET"),
               (b"x-original-uri", f"/orders/{n % 997}?page=1".encode()),
               (b"x-request-id", f"bench-{n}".encode()),
               (b"authorization", f"Bearer {token}".encode())]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/forward-auth",
            "raw_path": b"/forward-auth", "query_string": b"", "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 40000), "server": ("gw", 8080),
            "state": {}}


class Caller:
    """Calls the app as an ASGI server would; counts statuses."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.statuses: dict[int, int] = {}
        self._status = 0

    async def _receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self._status = message["status"]

    async def __call__(self, scope: dict[str, Any]) -> int:
        await self.app(scope, self._receive, self._send)
        status = self._status
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
    return {"p50_ms": round(at(0.50), 4), "p90_ms": round(at(0.90), 4),
            "p99_ms": round(at(0.99), 4), "p999_ms": round(at(0.999), 4),
            "max_ms": round(ordered[-1] * 1000, 4),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 4)}


async def cold(call: Caller, tokens: list[str]) -> dict[str, float]:
    samples = []
    for n, token in enumerate(tokens):
        scope = scope_for(token, n)
        started = time.perf_counter()
        await call(scope)
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


async def paced(call: Caller, tokens: list[str], seconds: float, rng: random.Random
                ) -> dict[str, Any]:
    count = int(seconds * RATE)
    scopes = [scope_for(rng.choice(tokens), n) for n in range(count)]
    samples: list[float] = []
    by_status: dict[int, list[float]] = {}
    start = time.perf_counter() + 0.05
    for n, scope in enumerate(scopes):
        target = start + n / RATE
        # Spin to the scheduled start: the event loop's timers are millisecond-grained,
        # and a late wake-up would be charged to the gateway.
        while time.perf_counter() < target:
            pass
        status = await call(scope)
        elapsed = time.perf_counter() - target
        samples.append(elapsed)
        by_status.setdefault(status, []).append(elapsed)
        if n % 64 == 0:
            await asyncio.sleep(0)  # let the loop breathe like a server would
    achieved = count / (time.perf_counter() - start)
    return {**percentiles(samples), "rate": round(achieved, 1),
            "by_status": {str(k): percentiles(v) for k, v in sorted(by_status.items())}}


async def closed(call: Caller, tokens: list[str], seconds: float) -> float:
    scopes = [scope_for(tokens[n % len(tokens)], n) for n in range(20_000)]
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for scope in scopes[:500]:
            await call(scope)
        done += 500
        scopes.append(scopes.pop(0))
    return done / (time.perf_counter() - started)


# -- over HTTP ---------------------------------------------------------------------------

def quiet_audit_log() -> None:
    """Decision events are written (JSON lines) as in production, to /dev/null."""
    audit = logging.getLogger("tessera.audit")
    audit.propagate = False
    audit.setLevel(logging.INFO)
    audit.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115


def serve(port: int, sessions: int, tokens_path: Path) -> None:
    """The server half of the HTTP run: fill the state, write the tokens, run uvicorn."""
    import uvicorn

    quiet_audit_log()
    bench = Bench()
    bench.grow(sessions)
    tokens = bench.tokens(POOL, random.Random(9470))
    gc.collect()
    tokens_path.write_text("\n".join(tokens))
    uvicorn.Server(uvicorn.Config(bench.app, host="127.0.0.1", port=port, log_level="warning",
                                  access_log=False, lifespan="on", server_header=False,
                                  http="httptools")).run()


def http_request(token: str, n: int, path: str = "/forward-auth") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: api.example\r\nX-Original-Method: GET\r\n"
            f"X-Original-URI: /orders/{n % 997}?page=1\r\nX-Request-Id: bench-{n}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n").encode()


def read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one response off a keep-alive connection; its status."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        buffer += chunk
    head = bytes(buffer[:end]).lower()
    at = head.find(b"content-length:")
    length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0
                      else len(head)]) if at >= 0 else 0
    while len(buffer) < end + 4 + length:
        buffer += sock.recv(65536)
    del buffer[:end + 4 + length]
    return int(head[9:12])


def http_paced(port: int, tokens: list[str], seconds: float, rng: random.Random
               ) -> dict[str, Any]:
    requests = [http_request(rng.choice(tokens), n) for n in range(int(seconds * RATE))]
    samples: list[float] = []
    statuses: dict[int, int] = {}
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        for raw in requests[:200]:  # warm the connection and the caches
            sock.sendall(raw)
            read_response(sock, buffer)
        start = time.perf_counter() + 0.05
        for n, raw in enumerate(requests):
            target = start + n / RATE
            while time.perf_counter() < target:
                pass
            sock.sendall(raw)
            status = read_response(sock, buffer)
            samples.append(time.perf_counter() - target)
            statuses[status] = statuses.get(status, 0) + 1
        achieved = len(requests) / (time.perf_counter() - start)
    return {**percentiles(samples), "rate": round(achieved, 1), "statuses": statuses}


async def http_closed(port: int, tokens: list[str], seconds: float, connections: int = 8,
                      path: str = "/forward-auth") -> float:
    requests = [http_request(tokens[n % len(tokens)], n, path) for n in range(2000)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            n = offset
            while time.perf_counter() < deadline:
                writer.write(requests[n % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                lower = head.lower()
                at = lower.find(b"content-length:")
                length = int(lower[at + 15:lower.find(b"\r\n", at)]) if at >= 0 else 0
                if length:
                    await reader.readexactly(length)
                done += 1
                n += connections
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return done / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def over_http(sessions: int, seconds: float) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        tokens_path = Path(tmp) / "tokens.txt"
        server = subprocess.Popen(  # its own process group, stopped by its pid
            [sys.executable, __file__, "--serve", str(port), "--sessions", str(sessions),
             "--tokens", str(tokens_path)], start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None:
                    raise RuntimeError("the gateway server exited")
                if tokens_path.exists():
                    with contextlib.suppress(OSError), socket.create_connection(
                            ("127.0.0.1", port), timeout=0.2):
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway server did not start")
                time.sleep(0.1)
            tokens = tokens_path.read_text().split("\n")
            steady = http_paced(port, tokens, seconds, random.Random(8693))
            max_rps = asyncio.run(http_closed(port, tokens, 3.0))
        finally:
            _stop(server)
    probe_rps = bare_probe(tokens)
    return {"paced": steady, "max_rps": round(max_rps, 1),
            "probe_rps": round(probe_rps, 1) if probe_rps else None}


def _stop(server: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def bare_probe(tokens: list[str]) -> float | None:
    """The ceiling for the same request shape, right after the gateway in the same run:
    the bare Starlette app of ``_baseline.py`` (``GET /healthz``: a small JSON answer,
    no verification, no policy, no decision log) on uvicorn + httptools, one worker, the
    same requests (headers, bearer token) and the same closed loop."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).resolve().parent),
           "_baseline:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    server = subprocess.Popen(cmd, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                return None
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)
        asyncio.run(http_closed(port, tokens, 0.5, path="/healthz"))  # warm-up
        return asyncio.run(http_closed(port, tokens, 3.0, path="/healthz"))
    finally:
        _stop(server)


def memory_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def in_process(sizes: tuple[int, ...], seconds: float
                     ) -> tuple[dict[int, dict[str, Any]], dict[int, int]]:
    bench = Bench()
    rng = random.Random(6750)
    results: dict[int, dict[str, Any]] = {}
    async with bench.app.router.lifespan_context(bench.app):
        call = Caller(bench.app)
        print(f"# forward-auth decision, in-process ASGI, {platform.python_implementation()} "
              f"{platform.python_version()}, {os.cpu_count()} CPU(s), load average "
              f"{os.getloadavg()[0]:.2f}; paced at {RATE} req/s for {seconds:g} s per size",
              flush=True)
        print(f"{'sessions':>10} {'fill_s':>7} {'rss_mb':>7} {'cold_p50':>9} {'cold_p99':>9} "
              f"{'p50_ms':>7} {'p99_ms':>7} {'p999_ms':>8} {'max_ms':>7} {'rate':>7} "
              f"{'max_rps':>8}", flush=True)
        for size in sizes:
            fill = bench.grow(size)
            tokens = bench.tokens(POOL, rng)
            gc.collect()
            first = await cold(call, tokens)
            steady = await paced(call, tokens, seconds, rng)
            max_rps = await closed(call, tokens, 2.0)
            bench.authorizer.service.state.confirm(bench.clock.now())
            results[size] = {"entries": len(bench.authorizer.service.state),
                             "fill_s": round(fill, 2), "rss_mb": round(memory_mb(), 1),
                             "cold": first, "paced": steady, "max_rps": round(max_rps, 1)}
            print(f"{size:>10} {fill:>7.2f} {memory_mb():>7.0f} {first['p50_ms']:>9.3f} "
                  f"{first['p99_ms']:>9.3f} {steady['p50_ms']:>7.3f} {steady['p99_ms']:>7.3f} "
                  f"{steady['p999_ms']:>8.3f} {steady['max_ms']:>7.3f} {steady['rate']:>7.0f} "
                  f"{max_rps:>8.0f}", flush=True)
        statuses = dict(sorted(call.statuses.items()))
    return results, statuses


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 100k, 2 s runs")
    parser.add_argument("--seconds", type=float, default=None,
                        help="paced run length per size (default 6, quick 2)")
    parser.add_argument("--no-http", action="store_true", help="in-process figures only")
    args = parser.parse_args(argv)
    sizes = SIZES[:2] if args.quick else SIZES
    seconds = args.seconds or (2.0 if args.quick else 6.0)
    quiet_audit_log()
    results, statuses = asyncio.run(in_process(sizes, seconds))
    largest, smallest = results[sizes[-1]], results[sizes[0]]
    print(f"# in-process at {sizes[-1]:,} sessions, by status: " + "; ".join(
        f"{k}: p50 {v['p50_ms']:.3f} p99 {v['p99_ms']:.3f} ms"
        for k, v in largest["paced"]["by_status"].items()), flush=True)
    http: dict[str, Any] | None = None
    if not args.no_http:
        http = over_http(sizes[-1], seconds)
        h = http["paced"]
        print(f"# over HTTP (uvicorn + httptools, 1 worker) at {sizes[-1]:,} sessions: paced "
              f"{h['rate']:.0f} req/s p50 {h['p50_ms']:.3f} p99 {h['p99_ms']:.3f} "
              f"p999 {h['p999_ms']:.3f} max {h['max_ms']:.3f} ms; closed loop, 8 "
              f"connections: {http['max_rps']:.0f} req/s", flush=True)
        if http["probe_rps"]:
            print(f"# bare Starlette probe (uvicorn + httptools, 1 worker), same requests, "
                  f"same closed loop: {http['probe_rps']:.0f} req/s; the gateway does "
                  f"{http['max_rps'] / http['probe_rps']:.2f} of it", flush=True)
    headline = http["paced"] if http else largest["paced"]
    summary = {
        "p99_ms": headline["p99_ms"],
        "max_rps": http["max_rps"] if http else largest["max_rps"],
        "mode": "http (uvicorn, 1 worker)" if http else "in-process ASGI (no sockets)",
        "probe_rps": http["probe_rps"] if http else None,
        "max_of_probe": round(http["max_rps"] / http["probe_rps"], 3)
        if http and http["probe_rps"] else None,
        "sessions": sizes[-1],
        "rate_rps": RATE,
        "p50_ms": headline["p50_ms"],
        "p999_ms": headline["p999_ms"],
        "inprocess_p99_ms": largest["paced"]["p99_ms"],
        "inprocess_p50_ms": largest["paced"]["p50_ms"],
        "inprocess_max_rps": largest["max_rps"],
        "inprocess_allowed_p99_ms": largest["paced"]["by_status"].get("200", {}).get("p99_ms"),
        "cold_p99_ms": largest["cold"]["p99_ms"],
        "flat_ratio_p50": round(largest["paced"]["p50_ms"] / smallest["paced"]["p50_ms"], 2),
        "by_sessions": {str(size): {"p50_ms": r["paced"]["p50_ms"],
                                    "p99_ms": r["paced"]["p99_ms"],
                                    "max_rps": r["max_rps"], "entries": r["entries"],
                                    "rss_mb": r["rss_mb"]}
                        for size, r in results.items()},
        "statuses": {str(k): v for k, v in statuses.items()},
        "cpus": os.cpu_count(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
    }
    print(f"# statuses {statuses}; p50 at {sizes[-1]:,} vs {sizes[0]:,} sessions: "
          f"x{summary['flat_ratio_p50']}", flush=True)
    return summary


if __name__ == "__main__":
    if "--serve" in sys.argv:
        server_args = argparse.ArgumentParser()
        server_args.add_argument("--serve", type=int, required=True)
        server_args.add_argument("--sessions", type=int, required=True)
        server_args.add_argument("--tokens", type=Path, required=True)
        parsed = server_args.parse_args()
        serve(parsed.serve, parsed.sessions, parsed.tokens)
        sys.exit(0)
    started = time.perf_counter()
    figures = main(sys.argv[1:])
    figures["runtime_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(figures, separators=(",", ":")))
