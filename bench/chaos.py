"""The chaos suite, full set: bounded fault experiments on loopback (issue 10).

    python bench/chaos.py [--hold 16] [--verifiers 4] [--only NAME]
                          [--postgres-url postgresql://postgres@127.0.0.1:5432/test]

Each experiment (``tests/chaos/experiments.py``) starts its own ``tessera serve``, its
own verifier processes, its own redis-server (never the machine's) and, where it needs
PostgreSQL, its own cluster (initdb from /usr/lib/postgresql/*/bin in a temporary
directory, a free port) or a database of its own on ``--postgres-url``. Faults are
SIGKILLs and restarts: Redis restarted empty with and without the identity service, a
verifier restarted while no snapshot can be had, the identity service killed
mid-refresh and mid-revoke, PostgreSQL restarted under traffic, keys rotated under load.

For each it reports revoked tokens accepted beyond the documented bound, events lost,
legitimate sessions lost (all must be 0) and seconds to recover after the fault ended.
Prints a table and, last, one JSON object; exits 1 if any column that must be 0 is not.
Every process it starts runs in its own session and is stopped by its group id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.chaos import experiments  # noqa: E402
from tests.chaos._rig import Outcome  # noqa: E402

from tessera.store.migrations import upgrade_database  # noqa: E402

COLUMNS = ("experiment", "beyond bound", "events lost", "sessions lost", "recovery s",
           "probes")


def table(outcomes: list[Outcome]) -> str:
    rows = [COLUMNS] + [(o.name, str(o.revoked_accepted_beyond_bound), str(o.events_lost),
                         str(o.sessions_lost),
                         "—" if o.recovery_seconds is None else f"{o.recovery_seconds:.2f}",
                         str(o.probes)) for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for o in outcomes:
        lines.extend(f"  {o.name}: {note}" for note in o.notes)
    return "\n".join(lines)


def dump_tasks() -> None:
    """SIGUSR1: where every task is waiting (for an experiment that seems stuck)."""
    for task in asyncio.all_tasks():
        task.print_stack(file=sys.stderr)


async def main(args: argparse.Namespace) -> int:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
    with tempfile.TemporaryDirectory(prefix="tessera-chaos-") as tmp:
        root = Path(tmp)
        template = root / "template" / "tessera.db"
        template.parent.mkdir()
        await asyncio.to_thread(upgrade_database, f"sqlite:///{template}")
        ctx = experiments.Chaos(root, template, hold=args.hold, verifiers=args.verifiers,
                                strict_bound=args.strict_bound, bound=args.bound,
                                postgres_url=args.postgres_url)
        chosen = [e for e in experiments.ALL if not args.only or args.only in e.__name__]
        outcomes = []
        for experiment in chosen:
            try:
                outcomes.append(await experiment(ctx))
            except Exception as exc:  # report it and go on with the others
                outcomes.append(Outcome(experiment.__name__, notes=[f"failed: {exc!r}"]))
            print(table(outcomes[-1:]).splitlines()[2], file=sys.stderr, flush=True)
    print(table(outcomes))
    bad = [o.name for o in outcomes if not o.ok]
    print(json.dumps({"experiments": [o.to_json() for o in outcomes],
                      "revoked_accepted_beyond_bound":
                          sum(o.revoked_accepted_beyond_bound for o in outcomes),
                      "events_lost": sum(o.events_lost for o in outcomes),
                      "sessions_lost": sum(o.sessions_lost for o in outcomes),
                      "max_recovery_seconds": max(
                          (o.recovery_seconds or 0.0 for o in outcomes), default=0.0),
                      "failed": bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hold", type=float, default=16.0,
                        help="seconds each fault lasts (the issue's outage was 16 s)")
    parser.add_argument("--verifiers", type=int, default=4)
    parser.add_argument("--strict-bound", type=float, default=1.0)
    parser.add_argument("--bound", type=float, default=3.0)
    parser.add_argument("--only", default=None, help="run experiments whose name has this")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "TESSERA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    sys.exit(asyncio.run(main(parser.parse_args())))
