"""Prometheus metrics that stay true with several worker processes.

prometheus-client's multiprocess mode: with ``PROMETHEUS_MULTIPROC_DIR`` set *before* a
process imports prometheus-client, every metric value lives in a memory-mapped file of
that directory, one per process; a scrape answered by any worker sums counters and
histograms over all files, so Prometheus sees the service's totals and no resets when it
reaches another worker. Counters of a worker that died stay in the total (a counter must
never go down); live gauges (``livesum``, ``liveall``, ...) of a dead process are removed.

``tessera serve`` owns the directory: ``prepare_directory`` (supervisor, before the
workers start) makes a fresh one or empties the operator's, ``worker_exited`` (each
worker, on shutdown) calls ``mark_process_dead``, and ``collect`` also forgets the live
gauges of workers killed without a shutdown (``kill -9``: uvicorn restarts them under a
new pid) before it aggregates.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.metrics_core import Metric

__all__ = ["ENV", "AggregatingCollector", "collect_registry", "enabled", "forget_dead_workers",
           "prepare_directory", "worker_exited"]

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"gauge_live[a-z]*_(\d+)\.db")


def enabled() -> bool:
    """Whether this process records metrics in the shared directory."""
    return bool(os.environ.get(ENV))


def prepare_directory(directory: str | Path | None = None) -> tuple[Path, bool]:
    """Make the per-run directory and export it in ``PROMETHEUS_MULTIPROC_DIR`` (workers
    started afterwards inherit it). ``directory`` (the operator's) is emptied of
    metric files from an earlier run (prometheus-client: wipe it between runs); without
    one a private temporary directory is made. Returns it and whether it was created."""
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        created = False
    else:
        path = Path(tempfile.mkdtemp(prefix="tessera-metrics-"))
        created = True
    os.environ[ENV] = str(path)
    return path, created


def worker_exited(pid: int | None = None) -> None:
    """Drop the live gauges of a worker that is shutting down (no-op outside the mode)."""
    if enabled():
        multiprocess.mark_process_dead(pid if pid is not None else os.getpid())  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers(directory: str | Path) -> list[int]:
    """``mark_process_dead`` for every pid with live-gauge files that no longer runs."""
    dead = []
    for path in Path(directory).glob("gauge_live*.db"):
        match = _LIVE_FILE.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            dead.append(int(match.group(1)))
    for pid in sorted(set(dead)):
        with contextlib.suppress(FileNotFoundError):
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    return dead


class AggregatingCollector:
    """Every process's metrics from the shared directory, summed per the metric's mode.
    Register it in a scrape-time registry (``collect_registry``) — never in a registry
    that also holds the process's own metrics, which would count them twice."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._directory = str(directory or os.environ[ENV])
        self._inner = multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            None, path=self._directory)

    def collect(self) -> Iterable[Metric]:
        forget_dead_workers(self._directory)
        metrics: Iterable[Metric] = self._inner.collect()  # type: ignore[no-untyped-call]
        return metrics


def collect_registry(directory: str | Path | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(AggregatingCollector(directory))
    return registry
