"""``/metrics`` of ``tessera serve --workers 2`` is the service's total, whichever worker
answers the scrape; a worker killed with SIGKILL neither loses nor double-counts, and the
metrics can live on their own port instead of the public one (docs/metrics.md)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tessera.observability.multiprocess import collect_registry
from tests.system._procs import TESSERA, Proc, Seed, free_port, poll, seed, server_env, spawn

TOKEN = "scrape-" + "k" * 40
AUTH = {"authorization": f"Bearer {TOKEN}"}
ISSUED = ("tessera_tokens_issued_total", (("grant_type", "client_credentials"),))
OK_COUNT = ("tessera_token_request_seconds_count",
            (("grant_type", "client_credentials"), ("outcome", "ok")))
REFUSED = ("tessera_token_request_errors_total",
           (("error", "invalid_client"), ("grant_type", "client_credentials")))
WORKERS = ("tessera_worker_processes", ())
_PID_FILE = re.compile(r"[a-z_]+_(\d+)\.db")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def worker_pids(directory: Path) -> set[int]:
    return {int(m.group(1)) for p in directory.glob("counter_*.db")
            if (m := _PID_FILE.fullmatch(p.name))}


def issued_by(directory: Path, pid: int, scratch: Path) -> float:
    """What one worker process counted: its own files, aggregated alone."""
    only = scratch / str(pid)
    shutil.rmtree(only, ignore_errors=True)
    only.mkdir(parents=True)
    for path in directory.glob(f"*_{pid}.db"):
        shutil.copy(path, only / path.name)
    from prometheus_client import generate_latest

    return parse(generate_latest(collect_registry(only)).decode()).get(ISSUED, 0.0)


async def start(data: Path, env: dict[str, str], *args: str) -> Proc:
    port = env["TESSERA_ISSUER"].rsplit(":", 1)[1]
    proc = await spawn("tessera", [TESSERA, "serve", "--port", port, *args], env=env,
                       cwd=data, log=data / "serve.log")

    async def up() -> bool:
        if not proc.running:
            raise AssertionError(f"tessera serve exited:\n{proc.log_tail()}")
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{env['TESSERA_ISSUER']}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await poll(up, timeout=30, what="tessera serve up")
    return proc


async def token_request(url: str, seeded: Seed, *, secret: str | None = None) -> int:
    # a new connection per request: the kernel hands connections to either worker
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/token", data={"grant_type": "client_credentials"},
                                   auth=(seeded.svc_id, secret or seeded.svc_secret))
        return response.status_code


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    return parse(response.text)


def metrics_dir_of(proc: Proc) -> Path | None:
    found = re.search(r"worker metrics in (\S+)", proc.log.read_text(errors="replace"))
    return Path(found.group(1)) if found else None


async def test_every_scrape_is_the_total_over_two_workers_even_after_a_kill(
        tmp_path: Path, sqlite_template: Path) -> None:
    """(An operator's ``PROMETHEUS_MULTIPROC_DIR`` is emptied and kept instead:
    tests/unit/observability/test_multiprocess.py.)"""
    data = tmp_path / "data"
    seeded = await seed(data, sqlite_template, users=0)
    env = server_env(data, free_port(), TESSERA_METRICS__TOKEN=TOKEN)
    url = env["TESSERA_ISSUER"]
    proc = await start(data, env, "--workers", "2")
    metrics_dir = metrics_dir_of(proc)
    assert metrics_dir is not None and metrics_dir.is_dir(), proc.log_tail()
    try:
        pids = await poll(lambda: len(worker_pids(metrics_dir)) == 2 and
                          worker_pids(metrics_dir), timeout=30, what="two workers")
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/metrics")).status_code == 401  # token required

        sent = refused = 0
        while True:  # until both workers have issued tokens (bounded by the poll below)
            codes = await asyncio.gather(*(token_request(url, seeded) for _ in range(10)))
            assert set(codes) == {200}
            sent += len(codes)
            refused += int(await token_request(url, seeded, secret="wrong") == 401)
            per_worker = {pid: issued_by(metrics_dir, pid, tmp_path / "one") for pid in pids}
            if all(per_worker.values()) or sent >= 400:
                break
        assert all(per_worker.values()), f"one worker served everything: {per_worker}"
        assert sum(per_worker.values()) == sent

        for _ in range(8):  # whichever worker answers, the numbers are the totals
            samples = await scrape(url)
            assert samples[ISSUED] == sent
            assert samples[OK_COUNT] == sent
            assert samples[REFUSED] == refused
            assert samples[WORKERS] == 2

        victim = sorted(pids)[0]
        os.kill(victim, signal.SIGKILL)  # a worker of this test's own server
        # within less than the health-check deadline (30 s): a worker killed while the
        # supervisor waited for its answer is noticed at once (httpserver.py)
        await poll(lambda: len(worker_pids(metrics_dir) - pids) == 1, timeout=20,
                   what="uvicorn restarting the killed worker")

        async def settled() -> bool:
            return (await scrape(url))[WORKERS] == 2

        await poll(settled, timeout=30, what="the live-worker gauge back at 2")
        samples = await scrape(url)
        assert samples[ISSUED] == sent, "the killed worker's counts must stay in the total"
        codes = await asyncio.gather(*(token_request(url, seeded) for _ in range(6)))
        assert set(codes) == {200}
        for _ in range(4):
            assert (await scrape(url))[ISSUED] == sent + 6
    finally:
        await proc.stop()
    assert not metrics_dir.exists(), "the server's own metrics directory is removed"


@pytest.mark.parametrize("workers", [1, 2])
async def test_metrics_on_their_own_port_and_not_on_the_public_one(
        tmp_path: Path, sqlite_template: Path, workers: int) -> None:
    """Served by the supervisor: from the workers' directory, or with one in-process
    worker from its registry."""
    data = tmp_path / "data"
    seeded = await seed(data, sqlite_template, users=0)
    metrics_port = free_port()
    env = server_env(data, free_port(), TESSERA_METRICS__PORT=str(metrics_port))
    url = env["TESSERA_ISSUER"]
    proc = await start(data, env, "--workers", str(workers))
    try:
        codes = await asyncio.gather(*(token_request(url, seeded) for _ in range(12)))
        assert set(codes) == {200}
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/metrics")).status_code == 404

            async def scraped() -> Samples:
                response = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
                assert response.status_code == 200
                samples = parse(response.text)
                return samples if samples.get(WORKERS) == workers else {}

            samples = await poll(scraped, timeout=20, what=f"{workers} live workers")
        assert samples[ISSUED] == 12
    finally:
        await proc.stop()
