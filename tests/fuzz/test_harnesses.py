"""Every atheris harness in this folder runs for a bounded time with 0 crashes.

Each harness is its own process (libFuzzer ends the process when it is done), all started
together: at most ``RUNS`` inputs or ``SECONDS`` seconds each, whichever comes first,
starting from its seeds. A
crash (an exception other than the parser's documented error types), a timeout or an
out-of-memory fails the test with atheris' report and the saved input. For a longer hunt:
``TESSERA_FUZZ_RUNS=1000000 TESSERA_FUZZ_SECONDS=600 pytest tests/fuzz``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
HARNESSES = sorted(HERE.glob("fuzz_*.py"))
RUNS = int(os.environ.get("TESSERA_FUZZ_RUNS", "3000"))
SECONDS = int(os.environ.get("TESSERA_FUZZ_SECONDS", "6"))
MIN_RUNS = min(RUNS, 300)
"""A run that ends on its time bound must still have tried this many inputs."""


def test_every_attacker_facing_parser_has_a_harness() -> None:
    assert {p.stem for p in HARNESSES} == {
        "fuzz_access_token", "fuzz_dpop_proof", "fuzz_envelope", "fuzz_form_body",
        "fuzz_gateway_policy"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str, int]]:
    """Every harness at once (the machine's cores work in parallel), each in its own
    process; by harness name: (its directory, libFuzzer's report, exit status)."""
    started = {}
    for harness in HARNESSES:
        workdir = tmp_path_factory.mktemp(harness.stem)
        (workdir / "corpus").mkdir()
        (workdir / "artifacts").mkdir()
        started[harness.stem] = (workdir, subprocess.Popen(
            [sys.executable, str(harness), str(workdir / "corpus"), f"-runs={RUNS}",
             f"-max_total_time={SECONDS}", "-timeout=10", "-rss_limit_mb=2048",
             f"-artifact_prefix={workdir / 'artifacts'}/", "-print_final_stats=1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=HERE))
    finished = {}
    for name, (workdir, proc) in started.items():
        try:
            _, report = proc.communicate(timeout=SECONDS + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, report = proc.communicate()
        finished[name] = (workdir, report, proc.returncode)
    return finished


@pytest.mark.parametrize("harness", HARNESSES, ids=lambda p: p.stem)
def test_no_crash_in_a_bounded_run(harness: Path,
                                   runs: dict[str, tuple[Path, str, int]]) -> None:
    workdir, stderr, returncode = runs[harness.stem]
    report = "\n".join(stderr.splitlines()[-60:])
    assert returncode == 0, f"{harness.name} crashed:\n{report}"
    saved = list((workdir / "artifacts").iterdir())
    assert not saved, f"{harness.name} saved a crashing input:\n{report}"
    done = re.search(r"Done (\d+) runs", stderr)
    assert done is not None, report
    assert int(done.group(1)) >= MIN_RUNS, f"only {done.group(1)} inputs tried:\n{report}"
    assert len(list((workdir / "corpus").iterdir())) > 1, "no new coverage at all"
