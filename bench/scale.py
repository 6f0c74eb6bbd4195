"""Scale figures (issue 16 item 3): a verifier holding the state of up to 1M live sessions
and 100k revocations, catch-up after a disconnect, propagation to 64 verifier processes,
and the identity service's revoke throughput on PostgreSQL — each as a growth curve.

    python bench/scale.py [--sizes 1000,10000,100000,1000000] [--verifiers 1,4,16,64]
                          [--pg-sizes 1000,10000,100000,1000000] [--quick]
                          [--redis-server redis-server] [--postgres-url URL] [--out bench/results]

What is measured (all on this machine; nothing is extrapolated):

- **Verifier state** for N live sessions and N/10 revocations (N = 1k … 1M). Worst case for
  the sessions: every one has a known session version (``session.version_bumped``), so
  the verifier holds an entry for each; the revocations are 80 % ``session.revoked`` and
  20 % ``token.revoked``. The snapshot is the identity service's JSON shape
  (``RevocationState.load_snapshot``). Each size runs in a fresh process:
  ``snapshot_load_s`` = ``orjson.loads`` of the bytes + ``load_snapshot``; bytes per entry
  = what the state holds once the snapshot is dropped (``tracemalloc``: the Python objects
  of the state, keys included), and, separately, the process's resident-set growth per
  entry (allocator fragmentation included).
- **Catch-up**: B events published on a private ``redis-server`` through
  ``RedisStreamsBus.publish`` (the relay's path, 1000 per script call), then read from
  cursor 0 through the SDK's ``BusSource`` and applied one by one to a
  ``RevocationState``, as ``RevocationFollower`` does. A 10-minute disconnect at 100k
  revocations/min is B = 1M.
- **Propagation** to N verifier processes (1 … 64): ``bench/propagation.py`` (revoke at
  ``tessera serve`` → rejected at every verifier; Redis Streams path) against the same
  private Redis; p50/p99 over sequential revocations.
- **Revoke throughput on PostgreSQL**: S live sessions in a fresh schema (S = 1k … 1M), then
  ``application.admin.revoke`` of one session per transaction (outbox event and audit row in
  the same transaction), 16 at a time; revocations per second.

Prints a table per figure and writes ``bench/results/scale.json`` and PNG charts
(matplotlib); the last line is one JSON object (``sessions``,
``verifier_bytes_per_entry``, ``snapshot_load_s``, ``catchup_s``,
``propagation_p50_ms_64``, ``propagation_p99_ms_64``, ``revoke_rps_pg`` and more).
Every process it starts runs in its own session and is stopped by its group id.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime
import gc
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from _procs import Procs, free_port

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
TARGETS = {"verifier_bytes_per_entry": 200, "snapshot_load_s": 5.0, "catchup_s": 10.0,
           "propagation_p99_ms_64": 100.0}
CATCHUP_EVENTS = 1_000_000
"""10 minutes at 100k revocations per minute."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- verifier state (one process per size) ----------------------------------------------------


def snapshot_events(sessions: int, now: float) -> list[dict[str, Any]]:
    """The live events of a snapshot: a version per session, then sessions/10 revocations."""
    events: list[dict[str, Any]] = []
    seq = 0
    for i in range(sessions):
        seq += 1
        events.append({"seq": seq, "kind": "session.version_bumped",
                       "key": secrets.token_urlsafe(16), "at": now,
                       "expires_at": now + 300 + i % 600, "data": {"sv": 2}})
    for i in range(sessions // 10):
        seq += 1
        events.append({"seq": seq, "kind": "token.revoked" if i % 5 == 0 else "session.revoked",
                       "key": secrets.token_urlsafe(16), "at": now,
                       "expires_at": now + 300 + i % 600, "data": {}})
    return events


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim() -> None:
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def state_worker(sessions: int, mode: str) -> dict[str, Any]:
    from tessera.verifier.revocation import RevocationState

    now = time.time()
    events = snapshot_events(sessions, now)
    blob = orjson.dumps({"seq": len(events), "events": events,
                         "watermark": {"head": len(events), "at": now, "epoch": "bench"}})
    del events
    out: dict[str, Any] = {"sessions": sessions, "snapshot_bytes": len(blob),
                           "snapshot_gzip_bytes": len(zlib.compress(blob, 6))}
    with tempfile.NamedTemporaryFile(prefix="tessera-snapshot-") as fh:
        fh.write(blob)
        fh.flush()
        del blob
        _trim()
        if mode == "memory":
            tracemalloc.start()
        base = _rss()  # neither the events nor the bytes are held now
        started = time.perf_counter()
        blob = Path(fh.name).read_bytes()  # as received from the identity service
    parsed = orjson.loads(blob)
    parsed_at = time.perf_counter()
    state = RevocationState()
    state.load_snapshot(parsed, now=now)
    done = time.perf_counter()
    entries = len(state)
    del parsed, blob
    _trim()
    out["entries"] = entries
    if mode == "memory":
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["state_bytes_per_entry"] = round(current / entries, 1)
    else:
        out["rss_bytes_per_entry"] = round((_rss() - base) / entries, 1)
        out.update(parse_s=round(parsed_at - started, 3),
                   apply_s=round(done - parsed_at, 3), load_s=round(done - started, 3))
    assert state.loaded and state.cursor == sessions + sessions // 10
    return out


def measure_state(sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        row: dict[str, Any] = {}
        for mode in ("time", "memory"):
            done = subprocess.run([sys.executable, str(HERE), "--state-worker", str(n),
                                   "--mode", mode], capture_output=True, text=True,
                                  check=False, timeout=1800)
            if done.returncode != 0:
                raise RuntimeError(f"state worker {n} {mode}: {done.stderr[-2000:]}")
            row.update(json.loads(done.stdout.strip().splitlines()[-1]))
        log(f"  state N={n:>8}: load {row['load_s']:.2f} s, "
            f"{row['state_bytes_per_entry']:.0f} B/entry (RSS {row['rss_bytes_per_entry']:.0f})")
        rows.append(row)
    return rows


# -- a private redis-server -------------------------------------------------------------------


def start_redis(procs: Procs, binary: str, workdir: Path) -> str:
    port = free_port()
    started = procs.start("redis", [binary, "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--dir", str(workdir),
                                    "--maxmemory", "0"], env=dict(os.environ),
                           cwd=workdir, log=workdir / "redis.log")
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or started.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start:\n{started.log_tail()}") from None
            time.sleep(0.05)
    client.close()
    return f"redis://127.0.0.1:{port}/0"


# -- catch-up ---------------------------------------------------------------------------------


async def catchup_once(redis_url: str, backlog: int) -> dict[str, Any]:
    from tessera.bus import OutboxBatch
    from tessera.bus.redis_streams import RedisStreamsBus
    from tessera.core.revocation import RevocationEvent, RevocationKind
    from tessera.verifier.revocation import RevocationState
    from tessera.verifier.revocation.sources import BusSource

    stream = f"bench:scale:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(redis_url, stream=stream, maxlen=max(backlog * 2, 1000))
    now = time.time()
    started = time.perf_counter()
    for start in range(0, backlog, 1000):
        batch = [RevocationEvent(RevocationKind.SESSION_REVOKED if seq % 5 else
                                 RevocationKind.TOKEN_REVOKED, secrets.token_urlsafe(16),
                                 at=now, expires_at=now + 360, seq=seq)
                 for seq in range(start + 1, min(backlog, start + 1000) + 1)]
        await bus.publish(OutboxBatch(batch, after=start))
    published = time.perf_counter() - started

    state = RevocationState()
    state.load_snapshot({"seq": 0, "events": []}, now=now)
    source = BusSource(bus)
    started = time.perf_counter()
    feed = source.follow(0)
    try:
        async for batch in feed:
            clock = time.time()
            for event in batch:  # as RevocationFollower._apply does
                state.apply(event)
            state.prune(clock)
            if state.cursor >= backlog:
                break
    finally:
        await feed.aclose()  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - started
    assert len(state) == backlog, (len(state), backlog)
    client = bus._redis
    await client.delete(stream, f"{stream}:epoch", f"{stream}:watermarks")
    await bus.aclose()
    return {"backlog": backlog, "catchup_s": round(elapsed, 3),
            "catchup_events_per_s": round(backlog / elapsed),
            "publish_events_per_s": round(backlog / published)}


def measure_catchup(redis_url: str, sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        row = asyncio.run(catchup_once(redis_url, n))
        log(f"  catch-up B={n:>8}: {row['catchup_s']:.2f} s "
            f"({row['catchup_events_per_s']:,} events/s)")
        rows.append(row)
    return rows


# -- propagation ------------------------------------------------------------------------------


def measure_propagation(redis_url: str, counts: list[int], revocations: int
                        ) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "propagation.py"),
                           "--counts", ",".join(map(str, counts)), "--revocations",
                           str(revocations), "--no-sse", "--redis-url", redis_url],
                          capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"propagation.py: {done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    rows = []
    for n in counts:
        rows.append({"verifiers": n, "p50_ms": summary[f"redis_n{n}_p50_ms"],
                     "p99_ms": summary[f"redis_n{n}_p99_ms"],
                     "raw_redis_p99_ms": summary[f"raw_redis_n{n}_p99_ms"]})
        log(f"  propagation N={n:>3}: p50 {rows[-1]['p50_ms']:.1f} ms, "
            f"p99 {rows[-1]['p99_ms']:.1f} ms")
    return rows


# -- revoke throughput on PostgreSQL ----------------------------------------------------------


async def revoke_pg_once(postgres_url: str, sessions: int, revokes: int, workdir: Path
                         ) -> dict[str, Any]:
    import asyncpg
    from sqlalchemy import insert

    from tessera.application import admin
    from tessera.core.clock import SystemClock
    from tessera.identity.compose import build_identity
    from tessera.keys import Sealer
    from tessera.settings import Settings
    from tessera.store.migrations import upgrade_database
    from tessera.store.ports import StoreConflict
    from tessera.store.sql.schema import sessions as sessions_table

    role = f"tessera_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'CREATE ROLE "{role}" LOGIN')
        await conn.execute(f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"')
        await conn.execute(f'ALTER ROLE "{role}" SET search_path = "{role}"')
    finally:
        await conn.close()
    parts = urlsplit(postgres_url)
    url = urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rsplit('@', 1)[-1]}"))
    try:
        await asyncio.to_thread(upgrade_database, url)
        settings = Settings(issuer="http://127.0.0.1:1", data_dir=workdir, database_url=url,
                            keys={"encryption_key": Sealer.new_kek_b64()},
                            audit_log_json=False)  # type: ignore[arg-type]
        identity = await build_identity(settings, clock=SystemClock())
        try:
            user = await admin.create_user(identity.admin, username="bench", password="x" * 16)
            now = time.time()
            sids = [secrets.token_urlsafe(16) for _ in range(sessions)]
            engine = identity.store.engine  # type: ignore[attr-defined]
            for start in range(0, sessions, 20_000):
                rows = [{"sid": sid, "user_id": user.user_id, "tenant_id": user.tenant_id,
                         "sv": 1, "acr": "urn:tessera:acr:pwd", "amr": ["pwd"],
                         "auth_time": now, "created_at": now, "last_seen_at": now}
                        for sid in sids[start:start + 20_000]]
                async with engine.begin() as sql:
                    await sql.execute(insert(sessions_table), rows)
            targets = sids[:: max(1, sessions // revokes)][:revokes]
            queue: asyncio.Queue[str] = asyncio.Queue()
            for sid in targets:
                queue.put_nowait(sid)

            conflicts = 0

            async def worker() -> int:
                nonlocal conflicts
                done = 0
                while not queue.empty():
                    sid = queue.get_nowait()
                    for _ in range(5):  # a conflict rolls back: retry, as a client would
                        try:
                            done += await admin.revoke(identity.admin, sid=sid, reason="bench",
                                                       actor="bench")
                            break
                        except StoreConflict:
                            conflicts += 1
                return done

            started = time.perf_counter()
            revoked = sum(await asyncio.gather(*(worker() for _ in range(16))))
            elapsed = time.perf_counter() - started
            assert revoked == len(targets), (revoked, len(targets))
        finally:
            await identity.aclose()
    finally:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP SCHEMA "{role}" CASCADE')
            await conn.execute(f'DROP ROLE "{role}"')
        finally:
            await conn.close()
    return {"sessions": sessions, "revoked": revoked, "conflicts_retried": conflicts,
            "revoke_rps": round(revoked / elapsed, 1)}


def measure_revoke_pg(postgres_url: str, sizes: list[int], revokes: int, workdir: Path
                      ) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        row = asyncio.run(revoke_pg_once(postgres_url, n, min(n, revokes), workdir))
        log(f"  revoke on PostgreSQL, {n:>8} live sessions: {row['revoke_rps']:.0f}/s")
        rows.append(row)
    return rows


# -- output -----------------------------------------------------------------------------------


def charts(out: Path, state: list[dict[str, Any]], catchup: list[dict[str, Any]],
           propagation: list[dict[str, Any]], revoke: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        path = (out / name).resolve()
        written.append(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))

    sessions = [r["sessions"] for r in state]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sessions, [r["state_bytes_per_entry"] for r in state], "o-", label="state objects")
    ax.plot(sessions, [r["rss_bytes_per_entry"] for r in state], "s--", label="process RSS")
    ax.axhline(TARGETS["verifier_bytes_per_entry"], color="grey", ls=":", label="target")
    ax.set(xscale="log", xlabel="live sessions (+10 % revocations)",
           ylabel="bytes per entry", title="Verifier memory per entry")
    ax.legend()
    save(fig, "scale_memory.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sessions, [r["load_s"] for r in state], "o-", label="snapshot load (parse+apply)")
    ax.plot(sessions, [r["parse_s"] for r in state], "s--", label="JSON parse")
    ax.plot([r["backlog"] for r in catchup], [r["catchup_s"] for r in catchup], "^-",
            label="catch-up of B events (x = B)")
    ax.axhline(TARGETS["snapshot_load_s"], color="grey", ls=":", label="load target")
    ax.axhline(TARGETS["catchup_s"], color="black", ls=":", label="catch-up target")
    ax.set(xscale="log", yscale="log", xlabel="sessions / backlog events", ylabel="seconds",
           title="Snapshot load and catch-up")
    ax.legend(fontsize=8)
    save(fig, "scale_load_catchup.png")

    if propagation:
        fig, ax = plt.subplots(figsize=(6, 4))
        counts = [r["verifiers"] for r in propagation]
        ax.plot(counts, [r["p50_ms"] for r in propagation], "o-", label="p50")
        ax.plot(counts, [r["p99_ms"] for r in propagation], "s-", label="p99")
        ax.plot(counts, [r["raw_redis_p99_ms"] for r in propagation], "x--",
                label="raw XADD→XREAD p99")
        ax.axhline(TARGETS["propagation_p99_ms_64"], color="grey", ls=":", label="p99 target")
        ax.set(xscale="log", xlabel="verifier processes", ylabel="ms",
               title="Revocation → rejected at every verifier")
        ax.legend()
        save(fig, "scale_propagation.png")

    if revoke:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["sessions"] for r in revoke], [r["revoke_rps"] for r in revoke], "o-")
        ax.set(xscale="log", xlabel="live sessions in PostgreSQL", ylabel="revocations / s",
               title="Revoke throughput on PostgreSQL (16 concurrent)")
        ax.set_ylim(bottom=0)
        save(fig, "scale_revoke_pg.png")
    return written


def table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> None:
    print(f"\n{title}")
    print("  ".join(f"{label:>{len(label) if len(label) > 10 else 10}}"
                    for _, label, _ in columns))
    for row in rows:
        print("  ".join(format(row[key], fmt).rjust(len(label) if len(label) > 10 else 10)
                        for key, label, fmt in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--catchup", default="1000,10000,100000,1000000")
    parser.add_argument("--verifiers", default="1,4,16,64")
    parser.add_argument("--revocations", type=int, default=100,
                        help="sequential revocations per propagation run")
    parser.add_argument("--pg-sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--pg-revokes", type=int, default=2000)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "TESSERA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--quick", action="store_true",
                        help="sizes up to 100k and 16 verifiers (a smoke run)")
    parser.add_argument("--state-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="time", help=argparse.SUPPRESS)
    parser.add_argument("--from-partial", action="store_true",
                        help="report what scale.partial.json holds (after an interrupted run)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what we started
    if args.state_worker is not None:
        print(json.dumps(state_worker(args.state_worker, args.mode)))
        return
    if args.from_partial:
        out = Path(args.out)
        done = json.loads((out / "scale.partial.json").read_text())
        report(out, done["state"], done["catchup"], done.get("propagation", []),
               done.get("revoke_pg", []), time.monotonic())
        return

    def ints(text: str) -> list[int]:
        values = [int(v) for v in text.split(",") if v]
        return [v for v in values if v <= 100_000 or not args.quick]

    sizes, backlogs, pg_sizes = ints(args.sizes), ints(args.catchup), ints(args.pg_sizes)
    counts = [c for c in ints(args.verifiers) if c <= 16 or not args.quick]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    partial = out / "scale.partial.json"

    def keep(**parts: Any) -> None:  # a crash later keeps what was measured
        done = json.loads(partial.read_text()) if partial.exists() else {}
        partial.write_text(json.dumps(done | parts, indent=2))

    log("verifier state …")
    state = measure_state(sizes)
    keep(state=state)
    procs = Procs()
    with tempfile.TemporaryDirectory(prefix="tessera-scale-") as tmp:
        try:
            redis_url = start_redis(procs, args.redis_server, Path(tmp))
            log("catch-up …")
            catchup = measure_catchup(redis_url, backlogs)
            keep(catchup=catchup)
            log("propagation …")
            propagation = measure_propagation(redis_url, counts, args.revocations)
            keep(propagation=propagation)
        finally:
            procs.stop_all()
        log("revoke throughput on PostgreSQL …")
        revoke = measure_revoke_pg(args.postgres_url, pg_sizes, args.pg_revokes, Path(tmp))
        keep(revoke_pg=revoke)

    report(out, state, catchup, propagation, revoke, started)


def report(out: Path, state: list[dict[str, Any]], catchup: list[dict[str, Any]],
           propagation: list[dict[str, Any]], revoke: list[dict[str, Any]],
           started: float) -> None:
    partial = out / "scale.partial.json"
    table("Verifier state: N live sessions (a version each) + N/10 revocations", state, [
        ("sessions", "sessions", ","), ("entries", "entries", ","),
        ("state_bytes_per_entry", "B/entry", ".0f"), ("rss_bytes_per_entry", "RSS B/entry", ".0f"),
        ("snapshot_bytes", "snapshot B", ","), ("snapshot_gzip_bytes", "gzip B", ","),
        ("parse_s", "parse s", ".2f"), ("apply_s", "apply s", ".2f"), ("load_s", "load s", ".2f")])
    table("Catch-up: B events behind, read from Redis and applied", catchup, [
        ("backlog", "events", ","), ("catchup_s", "catch-up s", ".2f"),
        ("catchup_events_per_s", "applied/s", ","), ("publish_events_per_s", "published/s", ",")])
    table("Propagation: revoke → rejected at every verifier (Redis Streams)", propagation, [
        ("verifiers", "verifiers", "d"), ("p50_ms", "p50 ms", ".1f"), ("p99_ms", "p99 ms", ".1f"),
        ("raw_redis_p99_ms", "raw p99 ms", ".1f")])
    table("Revoke throughput on PostgreSQL (one session per transaction, 16 concurrent)",
          revoke, [("sessions", "live sessions", ","), ("revoked", "revoked", ","),
                   ("conflicts_retried", "retried", "d"), ("revoke_rps", "revokes/s", ".0f")])

    partial.unlink(missing_ok=True)
    pngs = charts(out, state, catchup, propagation, revoke)
    top, caught = state[-1], catchup[-1]
    prop = next((r for r in propagation if r["verifiers"] == 64), propagation[-1]
                if propagation else {"verifiers": None, "p50_ms": None, "p99_ms": None})
    summary: dict[str, Any] = {
        "sessions": top["sessions"], "revocations": top["sessions"] // 10,
        "verifier_bytes_per_entry": top["state_bytes_per_entry"],
        "verifier_rss_bytes_per_entry": top["rss_bytes_per_entry"],
        "snapshot_bytes": top["snapshot_bytes"], "snapshot_gzip_bytes": top["snapshot_gzip_bytes"],
        "snapshot_load_s": top["load_s"], "catchup_events": caught["backlog"],
        "catchup_s": caught["catchup_s"],
        "propagation_verifiers": prop["verifiers"],
        "propagation_p50_ms_64": prop["p50_ms"], "propagation_p99_ms_64": prop["p99_ms"],
        "revoke_rps_pg": revoke[-1]["revoke_rps"] if revoke else None,
        "revoke_pg_sessions": revoke[-1]["sessions"] if revoke else None,
    }
    summary["targets_met"] = {
        "verifier_bytes_per_entry": summary["verifier_bytes_per_entry"]
        <= TARGETS["verifier_bytes_per_entry"],
        "snapshot_load_s": summary["snapshot_load_s"] <= TARGETS["snapshot_load_s"],
        "catchup_s": summary["catchup_s"] <= TARGETS["catchup_s"],
        "propagation_p99_ms_64": summary["propagation_p99_ms_64"] is not None
        and summary["propagation_p99_ms_64"] <= TARGETS["propagation_p99_ms_64"]}
    machine = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
               "cpus": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform(), "processor": _cpu_model()}
    (out / "scale.json").write_text(json.dumps(
        {"machine": machine, "summary": summary, "state": state, "catchup": catchup,
         "propagation": propagation, "revoke_pg": revoke, "charts": pngs}, indent=2) + "\n")
    print(f"\nmachine: {machine['processor']}, {machine['cpus']} CPUs, Python "
          f"{machine['python']}, {machine['date']}; run took {time.monotonic() - started:.0f} s;"
          f" charts: {', '.join(pngs)}")
    print(json.dumps(summary))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
