"""Fan-out beyond one machine (issue 16 item 4, docs/scale.md): how revocation events reach
10k verifiers across regions, simulated with costs measured here.

    python bench/fanout_sim.py [--verifiers 10000] [--regions 3] [--rates 10,100,1667]
                               [--results bench/results/scale.json] [--no-measure]

Costs (``--no-measure`` uses the last measured values in ``--results`` or the defaults):

- ``call_us`` and ``entry_us``: Redis CPU per consumer per read, and per entry in a
  reply — a private ``redis-server``, 200 consumers blocked in ``XREAD`` on one stream,
  300 events one at a time (every event wakes every consumer: call + entry), then a burst
  of 2000 (read in batches: ~entry); Redis's own CPU time (``INFO cpu``) over the
  deliveries. Redis runs commands on one thread: this caps how many consumers one Redis
  (or one replica) serves.
- ``apply_us``: a verifier applying one event — from ``bench/scale.py``'s catch-up rate.
- ``hop_ms``: network latency per hop, intra-region and cross-region (parameters; not
  measurable on one machine).

Topologies, events arriving as a Poisson process at rate r; each Redis or relay is one
thread serving its consumers one after another in rounds (events that arrive during a
round are handed out together in the next one — what blocked ``XREAD`` does):

- ``direct``: every verifier reads the primary's stream;
- ``replicas``: the primary feeds one replica per region (the cross-region hop), each
  replica serves its region's verifiers — Redis replicas answer blocking ``XREAD``;
- ``relay``: as ``replicas``, plus a relay tier per region of ``--fanout`` verifiers per
  relay server (replicas of replicas, or the identity service's SSE feed).

For each topology and rate: utilisation of the busiest server, and p50/p99 of
event → applied at a verifier (sampled verifiers per event). Utilisation ≥ 1 means the
backlog grows without bound: that topology cannot carry that rate. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "bench" / "results" / "scale.json"


@dataclass(frozen=True)
class Costs:
    call_us: float
    """Redis CPU per consumer per read (the reply's fixed part)."""
    entry_us: float
    """Redis CPU per entry in a reply."""
    apply_us: float
    hop_local_ms: float = 0.5
    hop_region_ms: float = 70.0


# -- measuring Redis's cost per delivery --------------------------------------------------------


async def _measure(port: int, consumers: int, events: int) -> tuple[float, float]:
    """(µs per consumer per read call, µs per entry delivered) of Redis's own CPU."""
    import redis.asyncio as aioredis

    admin = aioredis.Redis(port=port)
    stream = "fanout:sim"
    await admin.xadd(stream, {"e": "0"}, id="1-0")
    clients = [aioredis.Redis(port=port, socket_timeout=10) for _ in range(consumers)]
    received = [0] * consumers
    batch = 2000

    async def consume(i: int) -> None:
        cursor = "1-0"
        while received[i] < events + batch:
            reply = await clients[i].xread({stream: cursor}, block=5000, count=1000)
            for _, entries in reply or []:
                received[i] += len(entries)
                cursor = entries[-1][0]

    async def cpu() -> float:
        info = await admin.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    tasks = [asyncio.create_task(consume(i)) for i in range(consumers)]
    await asyncio.sleep(0.5)  # every consumer blocked
    before = await cpu()
    for n in range(events):  # one at a time: each wakes every consumer for one entry
        await admin.xadd(stream, {"e": "x" * 120}, id=f"{n + 2}-0")
        await asyncio.sleep(0.004)
    while min(received) < events:  # noqa: ASYNC110 - counters, polled briefly
        await asyncio.sleep(0.01)
    single = (await cpu() - before) / (consumers * events)
    before = await cpu()
    pipe = admin.pipeline(transaction=False)
    for n in range(batch):  # a burst: consumers read it in batches
        pipe.xadd(stream, {"e": "x" * 120}, id=f"{events + n + 2}-0")
    await pipe.execute()
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    entry = max(0.0, (await cpu() - before) / (consumers * batch))
    for client in clients:
        await client.aclose()
    await admin.aclose()
    return max(single - entry, 0.0) * 1e6, entry * 1e6


def measure_redis(binary: str, consumers: int = 200, events: int = 300
                  ) -> tuple[float, float]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", tmp,
                                 "--maxclients", "10000"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            return asyncio.run(_measure(port, consumers, events))
        finally:
            proc.terminate()
            proc.wait(10)


# -- the simulation ---------------------------------------------------------------------------


def serve_rounds(arrivals: list[float], consumers: int, costs: Costs
                 ) -> tuple[list[float], list[float], float]:
    """One single-threaded Redis (or relay) serving ``consumers`` blocked readers. Events
    arriving while it works wait for the next round, which hands each consumer all of them
    in one reply: round work = consumers × (call + n × entry). Returns, per event, when
    its round started and the time per consumer in that round, and the busy time."""
    call, entry = costs.call_us / 1e6, costs.entry_us / 1e6
    starts, each = [0.0] * len(arrivals), [0.0] * len(arrivals)
    i, free, busy = 0, 0.0, 0.0
    while i < len(arrivals):
        start = max(free, arrivals[i])
        j = i
        while j < len(arrivals) and arrivals[j] <= start:
            j += 1
        per = call + (j - i) * entry
        for m in range(i, j):
            starts[m], each[m] = start, per
        free = start + consumers * per
        busy += consumers * per
        i = j
    return starts, each, busy


def simulate(topology: str, rate: float, verifiers: int, regions: int, fanout: int,
             costs: Costs, *, duration: float = 20.0, samples: int = 32,
             seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    apply = costs.apply_us / 1e6
    local, region = costs.hop_local_ms / 1e3, costs.hop_region_ms / 1e3
    per_region = math.ceil(verifiers / regions)
    arrivals: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        arrivals.append(t)
        t += rng.expovariate(rate)
    lags: list[float] = []
    busy: list[float] = []

    def deliver(starts: list[float], each: list[float], i: int, k: int) -> float:
        return starts[i] + (k + 1) * each[i]

    if topology == "direct":
        starts, each, b = serve_rounds(arrivals, verifiers, costs)
        busy.append(b)
        for i, at in enumerate(arrivals):
            for _ in range(samples):
                k = rng.randrange(verifiers)
                hop = local if k < per_region else region  # far regions read across
                lags.append(deliver(starts, each, i, k) + hop + apply - at)
    else:
        relays = math.ceil(per_region / fanout) if topology == "relay" else 0
        p_starts, p_each, b = serve_rounds(arrivals, regions, costs)
        busy.append(b)
        for r in range(regions):
            hop = local if r == 0 else region
            at_replica = [deliver(p_starts, p_each, i, r) + hop for i in range(len(arrivals))]
            consumers = per_region if topology == "replicas" else relays
            r_starts, r_each, b = serve_rounds(at_replica, consumers, costs)
            busy.append(b)
            if topology == "replicas":
                for i, at in enumerate(arrivals):
                    for _ in range(max(1, samples // regions)):
                        k = rng.randrange(per_region)
                        lags.append(deliver(r_starts, r_each, i, k) + local + apply - at)
                continue
            for j in range(relays):
                at_relay = [deliver(r_starts, r_each, i, j) + local
                            for i in range(len(arrivals))]
                l_starts, l_each, b = serve_rounds(at_relay, fanout, costs)
                busy.append(b)
                if j % max(1, relays // 4) == 0:  # sample a few relays of each region
                    for i, at in enumerate(arrivals):
                        k = rng.randrange(fanout)
                        lags.append(deliver(l_starts, l_each, i, k) + local + apply - at)
    horizon = max(duration, arrivals[-1] if arrivals else duration)
    utilisation = max(busy) / horizon
    lags.sort()

    def pct(p: float) -> float:
        return lags[min(len(lags) - 1, int(len(lags) * p / 100))] * 1e3 if lags else math.nan

    # a backlog that grew through the run: the last events waited far longer than the first
    tail = lags and pct(99) > 10 * max(pct(50), 1.0) and utilisation > 0.95
    servers = 1 + (regions if topology != "direct" else 0) + (
        regions * math.ceil(per_region / fanout) if topology == "relay" else 0)
    return {"topology": topology, "rate": rate, "verifiers": verifiers, "regions": regions,
            "servers": servers, "max_utilisation": round(utilisation, 3),
            "stable": utilisation < 0.95 and not tail, "p50_ms": round(pct(50), 2),
            "p99_ms": round(pct(99), 2)}


def max_rate(topology: str, verifiers: int, regions: int, fanout: int, costs: Costs) -> float:
    """Events/s at which the busiest server saturates with full batching (every round
    long): consumers × rate × entry = 1. Rounds of one event cap it far lower."""
    per_region = math.ceil(verifiers / regions)
    if topology == "direct":
        consumers = verifiers
    elif topology == "replicas":
        consumers = max(regions, per_region)
    else:
        consumers = max(regions, math.ceil(per_region / fanout), fanout)
    return 1.0 / (consumers * max(costs.entry_us, 1e-3) / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verifiers", type=int, default=10_000)
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--fanout", type=int, default=250,
                        help="verifiers per relay server in the relay topology")
    parser.add_argument("--rates", default="10,100,1667",
                        help="events/s; 1667 = 100k revocations per minute")
    parser.add_argument("--results", default=str(DEFAULT_RESULTS))
    parser.add_argument("--no-measure", action="store_true")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "")
    parser.add_argument("--hop-region-ms", type=float, default=70.0)
    args = parser.parse_args()

    results = Path(args.results)
    scale = json.loads(results.read_text()) if results.exists() else {}
    measured = scale.get("fanout", {})
    catchup = scale.get("catchup") or []
    apply_us = (1e6 / catchup[-1]["catchup_events_per_s"]) if catchup else 10.0
    if args.no_measure or not args.redis_server:
        call_us = float(measured.get("call_us", 15.0))
        entry_us = float(measured.get("entry_us", 1.0))
        source = "previous measurement" if "call_us" in measured else "default"
    else:
        call_us, entry_us = measure_redis(args.redis_server)
        source = "measured now: 200 blocked consumers, 300 single events, a 2000-event burst"
    costs = Costs(call_us=call_us, entry_us=entry_us, apply_us=apply_us,
                  hop_region_ms=args.hop_region_ms)
    print(f"costs: Redis {call_us:.2f} µs per consumer per read + {entry_us:.2f} µs per entry "
          f"({source}); verifier apply {apply_us:.1f} µs per event (bench/scale.py "
          f"catch-up); hops {costs.hop_local_ms} ms in region, {costs.hop_region_ms} ms across")
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    print(f"\n{args.verifiers:,} verifiers in {args.regions} regions "
          f"(relay fan-out {args.fanout} per server)")
    print(f"{'topology':<10} {'events/s':>9} {'servers':>8} {'max util':>9} "
          f"{'p50 ms':>9} {'p99 ms':>9}  {'max events/s':>12}")
    for topology in ("direct", "replicas", "relay"):
        ceiling = max_rate(topology, args.verifiers, args.regions, args.fanout, costs)
        for rate in rates:
            row = simulate(topology, rate, args.verifiers, args.regions, args.fanout, costs)
            row["max_rate"] = round(ceiling, 1)
            rows.append(row)
            p50 = f"{row['p50_ms']:9.1f}" if row["stable"] else "  unbound"
            p99 = f"{row['p99_ms']:9.1f}" if row["stable"] else "  unbound"
            print(f"{topology:<10} {rate:9.0f} {row['servers']:8d} "
                  f"{row['max_utilisation']:9.2f} {p50} {p99}  {ceiling:12.0f}")
    if results.exists():
        scale["fanout"] = {"call_us": call_us, "entry_us": entry_us, "apply_us": apply_us,
                           "verifiers": args.verifiers, "regions": args.regions,
                           "fanout": args.fanout, "rows": rows}
        results.write_text(json.dumps(scale, indent=2) + "\n")
    print(json.dumps({"verifiers": args.verifiers, "regions": args.regions,
                      "redis_call_us": round(call_us, 3), "redis_entry_us": round(entry_us, 3),
                      "apply_us": round(apply_us, 2),
                      "max_rate_direct": rows[0]["max_rate"],
                      "max_rate_replicas": next(r for r in rows
                                                if r["topology"] == "replicas")["max_rate"],
                      "max_rate_relay": next(r for r in rows
                                             if r["topology"] == "relay")["max_rate"]}))


if __name__ == "__main__":
    sys.exit(main())
