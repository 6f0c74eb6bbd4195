"""Instructions per request, counted by valgrind's callgrind: a figure a shared VM's noise
does not move, for telling a 1–3% change from nothing where req/s varies ±10% between
two runs a minute apart. It counts user-space instructions only: system calls, the
kernel's network path, cache misses and waiting are not in it, so it says whether a
change removed work from our code, not how much faster a server gets (measure that with
the other benchmarks).

    python bench/instructions.py [--baseline OLD_SRC] [--requests 400] [--events 200]

- ``token``: ``tessera serve --workers 1`` under callgrind with instrumentation switched
  on (``callgrind_control -i on``) only while ``--requests`` client_credentials requests
  (ES256) go over eight keep-alive connections; instructions / requests.
- ``verifier``: a ``VerifierService`` following a Redis stream, one revocation event per
  ``XREAD`` (another process publishes one every 30 ms, slower than the instrumented
  verifier reads). Run with 60 and 60 + ``--events`` events: the difference / events.

``--baseline DIR`` measures another source tree the same way in the same run (a git
worktree's ``src``: ``git worktree add /tmp/old HEAD~3``), and prints the ratio.
The counts include what the service does per second rather than per request (the SQLite
outbox watch polls every 10 ms), which valgrind's slowdown inflates and a VM's changing
speed moves: one tree's token count moved by up to 4% between runs minutes apart. So
each tree is measured ``--repeat`` times, interleaved, and the least count kept (that
work only ever adds). Needs
valgrind (``apt-get install valgrind``) and, for the verifier, Redis
(``--redis-url``, default ``$TESSERA_TEST_REDIS_URL`` or redis://127.0.0.1:6379/0).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
sys.path.insert(0, str(REPO / "bench"))  # token_endpoint's helpers (imported when used)
_FIRST_EVENTS = 60
_PACE = 0.03


def _collected(log: str) -> int:
    found = re.findall(r"Collected : (\d+)", log)
    if not found:
        raise RuntimeError(f"callgrind printed no total:\n{log[-2000:]}")
    return int(found[-1])


# -- token ---------------------------------------------------------------------------------


def token_instructions(src: Path, requests: int) -> float:
    import token_endpoint as te

    tmp = Path(tempfile.mkdtemp(prefix="tessera-instr-"))
    try:
        env, client = te.setup_tessera(argparse.Namespace(algorithm="ES256"), tmp)
        env = {**env, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
        port = int(env["TESSERA_BENCH_PORT"])
        log = tmp / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                 f"--callgrind-out-file={tmp}/callgrind.out", te._tessera_bin(), "serve",
                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}/healthz", server)
            auth = te._basic(client["client_id"], client["client_secret"])
            _, body = te.cc_request("ES256")
            raw = (f"POST /token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {auth}"
                   f"\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
            warm = asyncio.run(_load(port, raw, 80))
            _control(server.pid, "on")
            good = asyncio.run(_load(port, raw, requests))
            _control(server.pid, "off")
            if warm != 80 or good != requests:
                raise RuntimeError(f"{requests - good} token requests failed")
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(120)
        return _collected(log.read_text(errors="replace")) / requests
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server under callgrind did not start") from None
            time.sleep(0.5)


def _control(pid: int, state: str) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True,
                   capture_output=True)


async def _load(port: int, raw: bytes, total: int) -> int:
    async def connection(count: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ok = 0
        try:
            for _ in range(count):
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
                payload = await reader.readexactly(int(length.group(1)) if length else 0)
                ok += head.startswith(b"HTTP/1.1 200") and b"access_token" in payload
        finally:
            writer.close()
        return ok

    per = [total // 8 + (1 if i < total % 8 else 0) for i in range(8)]
    return sum(await asyncio.gather(*(connection(n) for n in per if n)))


# -- verifier ------------------------------------------------------------------------------


def verifier_instructions(src: Path, events: int, redis_url: str) -> float:
    first = _verifier_run(src, _FIRST_EVENTS, redis_url)
    second = _verifier_run(src, _FIRST_EVENTS + events, redis_url)
    return (second - first) / events


def _verifier_run(src: Path, events: int, redis_url: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--verifier-child", str(events), "--redis-url", redis_url, "--src",
         str(src)], env=env, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the verifier run failed:\n{done.stderr[-2000:]}")
    return _collected(done.stderr)


_PUBLISHER = """
import asyncio, sys, time
from tessera.bus.redis_streams import RedisStreamsBus
from tessera.core.revocation import RevocationEvent
async def main(url, stream, n, pace):
    bus = RedisStreamsBus.from_url(url, stream=stream)
    try:
        await asyncio.sleep(1.0)
        for i in range(1, n + 1):
            now = time.time()
            await bus.publish([RevocationEvent(kind="session", key=f"sid-{i}", at=now,
                                               expires_at=now + 600, seq=i)])
            await asyncio.sleep(pace)
    finally:
        await bus.aclose()
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


def verifier_child(events: int, redis_url: str, src: Path) -> None:
    """Under callgrind: follow the stream until ``events`` events are applied."""
    sys.path.insert(0, str(src))
    from prometheus_client import CollectorRegistry

    from tessera.core.clock import SystemClock
    from tessera.verifier.service import VerifierService
    from tessera.verifier.settings import VerifierSettings

    stream = f"tessera-instr:{os.getpid()}"

    async def empty_snapshot() -> dict[str, Any]:
        return {"seq": 0, "events": []}

    async def no_range(_after: int) -> dict[str, Any]:
        return {"events": [], "next": None}

    async def main() -> None:
        settings = VerifierSettings(
            issuer="http://127.0.0.1:9", audience="bench", source="redis",
            redis_url=redis_url, redis_stream=stream, client_id="bench",
            client_secret="bench", report_applied=False, startup_wait=0)
        service = VerifierService(settings, clock=SystemClock(), registry=CollectorRegistry())
        assert service.follower is not None
        source: Any = service.follower.source  # the snapshot: empty, no identity service
        source._snapshot, source._range = empty_snapshot, no_range
        reached = asyncio.Event()

        def progressed() -> None:
            if service.state.cursor >= events:
                reached.set()

        service.follower.on_progress = progressed
        await service.start(wait=0)
        publisher = await asyncio.create_subprocess_exec(  # valgrind follows no child
            sys.executable, "-c", _PUBLISHER, redis_url, stream, str(events), str(_PACE),
            env={**os.environ, "PYTHONPATH": str(src)})
        try:
            await asyncio.wait_for(reached.wait(), events * _PACE * 20 + 120)
        finally:
            await asyncio.wait_for(publisher.wait(), 60)
            await service.aclose()
            import redis

            redis.Redis.from_url(redis_url).delete(stream, f"{stream}:watermarks",
                                                   f"{stream}:epoch")

    logging_quiet()
    asyncio.run(main())


def logging_quiet() -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)


# -- main ----------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", type=Path, help="another source tree (its src folder)")
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--events", type=int, default=200)
    p.add_argument("--redis-url", default=os.environ.get("TESSERA_TEST_REDIS_URL")
                   or "redis://127.0.0.1:6379/0")
    p.add_argument("--repeat", type=int, default=2,
                   help="measurements of each tree, interleaved; the least is kept (2)")
    p.add_argument("--no-token", action="store_true")
    p.add_argument("--no-verifier", action="store_true")
    p.add_argument("--verifier-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--src", type=Path, default=SRC, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.verifier_child is not None:
        verifier_child(args.verifier_child, args.redis_url, args.src)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    trees = {"this tree": SRC}
    if args.baseline is not None:
        if not (args.baseline / "tessera").is_dir():
            p.error(f"--baseline {args.baseline} holds no tessera package")
        trees = {"baseline": args.baseline.resolve(), **trees}
    results: dict[str, dict[str, float]] = {name: {} for name in trees}
    for _ in range(args.repeat):  # the trees interleaved; the least of each kept
        for name, src in trees.items():
            figures = results[name]
            if not args.no_token:
                count = token_instructions(src, args.requests)
                figures["token"] = min(figures.get("token", count), count)
            if not args.no_verifier:
                count = verifier_instructions(src, args.events, args.redis_url)
                figures["verifier_event"] = min(figures.get("verifier_event", count), count)
    def shown(value: float | None) -> str:
        return f"{value:16,.0f}" if value is not None else f"{'not measured':>16s}"

    print(f"{'tree':12s} {'token request':>16s} {'verifier event':>16s}")
    for name, figures in results.items():
        print(f"{name:12s} {shown(figures.get('token'))} "
              f"{shown(figures.get('verifier_event'))}")
    mine = results["this tree"]
    summary: dict[str, Any] = {
        "token_instructions": round(mine["token"]) if "token" in mine else None,
        "verifier_event_instructions": (round(mine["verifier_event"])
                                        if "verifier_event" in mine else None),
        "requests": args.requests, "events": args.events}
    if args.baseline is not None:
        base = results["baseline"]
        for key, label in (("token", "token"), ("verifier_event", "verifier_event")):
            if base.get(key):
                summary[f"baseline_{label}_instructions"] = round(base[key])
                summary[f"{label}_ratio"] = round(results["this tree"][key] / base[key], 3)
        print("ratio (this tree / baseline): " + ", ".join(
            f"{k.removesuffix('_ratio')} {v}" for k, v in summary.items()
            if k.endswith("_ratio")))
    print(json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
