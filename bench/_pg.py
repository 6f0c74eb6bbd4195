"""PostgreSQL for the benchmarks: a scratch database per run (created and dropped with
psql, never touching anything else on the server), and pgbench's tpcb-like TPS on the
same server in the same run: the engine's own ceiling for small write transactions."""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import make_url

__all__ = ["PgbenchResult", "run_pgbench", "scratch_database"]


def _psql(url: str, sql: str) -> None:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
                   check=True, capture_output=True, text=True, timeout=60)


def _libpq(url: str) -> str:
    """A URL libpq tools understand (no ``+asyncpg`` driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def scratch_database(base_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on the server of ``base_url``; dropped afterwards."""
    base = _libpq(base_url)
    name = f"{prefix}_{secrets.token_hex(4)}"
    _psql(base, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        _psql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class PgbenchResult:
    tps: float
    latency_ms: float
    clients: int
    seconds: int
    transactions: int


def run_pgbench(url: str, *, clients: int, threads: int, seconds: int,
                scale: int = 1) -> PgbenchResult:
    """``pgbench -i -s scale`` then the built-in tpcb-like script for ``seconds``."""
    url = _libpq(url)
    subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), url], check=True,
                   capture_output=True, text=True, timeout=300)
    out = subprocess.run(["pgbench", "-b", "tpcb-like", "-c", str(clients), "-j",
                          str(threads), "-T", str(seconds), "-n", url],
                         check=True, capture_output=True, text=True,
                         timeout=seconds + 120).stdout
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    latency = re.search(r"latency average = ([0-9.]+) ms", out)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    if not tps:
        raise RuntimeError(f"pgbench output not understood:\n{out[-800:]}")
    return PgbenchResult(float(tps.group(1)), float(latency.group(1)) if latency else 0.0,
                         clients, seconds, int(processed.group(1)) if processed else 0)
