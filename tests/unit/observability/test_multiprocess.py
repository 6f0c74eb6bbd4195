"""Multi-process metrics plumbing and who may scrape (docs/metrics.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tessera.observability import multiprocess
from tessera.observability.metrics import IdentityMetrics
from tessera.observability.scrape import MetricsListener, ScrapeRefused, authorize_scrape

TOKEN = "t" * 40


@pytest.fixture
def no_multiproc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``prepare_directory`` exports the variable; recorded here so it is removed after
    the test (a leftover would switch later tests' metrics to multiprocess mode)."""
    monkeypatch.setenv(multiprocess.ENV, "")
    monkeypatch.delenv(multiprocess.ENV)


def test_every_identity_gauge_names_its_multiprocess_mode() -> None:
    metrics = IdentityMetrics()
    gauges = [m for m in vars(metrics).values() if isinstance(m, Gauge)]
    assert gauges, "IdentityMetrics has gauges (tessera_worker_processes at least)"
    for gauge in gauges:
        # "all" (the default) publishes one series per pid instead of the service's value
        assert gauge._multiprocess_mode != "all", gauge._name


@pytest.mark.usefixtures("no_multiproc_env")
def test_the_operators_directory_is_emptied_and_exported(tmp_path: Path) -> None:
    given = tmp_path / "prom"
    given.mkdir()
    (given / "counter_12345.db").write_bytes(b"stale")
    (given / "keep.txt").write_text("not a metrics file")
    path, created = multiprocess.prepare_directory(given)
    assert (path, created) == (given, False)
    assert sorted(p.name for p in given.iterdir()) == ["keep.txt"]
    assert os.environ[multiprocess.ENV] == str(given)
    assert multiprocess.enabled()


@pytest.mark.usefixtures("no_multiproc_env")
def test_without_one_a_private_directory_is_made() -> None:
    path, created = multiprocess.prepare_directory(None)
    try:
        assert created and path.is_dir() and not any(path.iterdir())
        assert os.environ[multiprocess.ENV] == str(path)
    finally:
        path.rmdir()


def _write(directory: Path, kind: str, pid: int, name: str, value: float) -> None:
    """One sample as a worker would record it (counters' samples end in ``_total``)."""
    sample = f"{name}_total" if kind == "counter" else name
    store = MmapedDict(str(directory / f"{kind}_{pid}.db"))
    store.write_value(mmap_key(name, sample, [], [], name), value, 0.0)
    store.close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_workers_live_gauges_go_and_its_counters_stay(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getpid()
    _write(tmp_path, "gauge_livesum", dead, "tessera_worker_processes", 1)
    _write(tmp_path, "gauge_livesum", alive, "tessera_worker_processes", 1)
    _write(tmp_path, "counter", dead, "tessera_tokens_issued", 5)
    _write(tmp_path, "counter", alive, "tessera_tokens_issued", 7)
    text = generate_latest(multiprocess.collect_registry(tmp_path)).decode()
    assert "tessera_worker_processes 1.0" in text  # only the live one
    assert "tessera_tokens_issued_total 12.0" in text  # the dead worker's count kept
    assert not (tmp_path / f"gauge_livesum_{dead}.db").exists()
    assert (tmp_path / f"counter_{dead}.db").exists()


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN} "])
def test_the_scrape_token_admits(header: str) -> None:
    authorize_scrape(header, token=TOKEN, open_=False)


@pytest.mark.parametrize("header", [None, "", f"Basic {TOKEN}", "Bearer " + "t" * 39,
                                    f"Bearer {TOKEN}x", "Bearer é", TOKEN])
def test_anything_else_is_401_with_a_challenge(header: str | None) -> None:
    with pytest.raises(ScrapeRefused) as refused:
        authorize_scrape(header, token=TOKEN, open_=True)
    assert (refused.value.status, refused.value.error) == (401, "invalid_token")
    assert refused.value.challenge == 'Bearer realm="metrics"'


def test_without_a_token_only_an_open_place_serves() -> None:
    authorize_scrape(None, token=None, open_=True)
    with pytest.raises(ScrapeRefused) as refused:
        authorize_scrape("Bearer anything", token=None, open_=False)
    assert (refused.value.status, refused.value.error) == (403, "access_denied")
    assert "metrics.token" in refused.value.description
    assert refused.value.challenge is None


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_separate_listener_serves_the_registry_behind_the_token() -> None:
    registry = CollectorRegistry()
    Counter("tessera_demo", "A counter.", registry=registry).inc(3)
    listener = MetricsListener(registry, host="127.0.0.1", port=0, token=TOKEN).start()
    try:
        url = f"http://127.0.0.1:{listener.port}/metrics"
        status, body = _get(url)
        assert status == 401 and json.loads(body)["error"] == "invalid_token"
        status, body = _get(url, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and "tessera_demo_total 3.0" in body
    finally:
        listener.close()


def test_the_environment_is_clean_again() -> None:
    """Runs after the two above (file order): nothing leaked."""
    assert multiprocess.ENV not in os.environ
