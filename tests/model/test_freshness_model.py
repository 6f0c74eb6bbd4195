"""The freshness protocol, model-checked: spin (Debian's ``spin`` package; CI installs it,
``.ci/run``) explores every interleaving of docs/model/freshness.pml — identity service,
outbox relay, a Redis that crashes and comes back empty, two verifiers that are killed
and restart — and proves

- ``fresh_is_proven``: no verifier ever counts itself fresh as of ``t`` while an event
  committed before ``t`` is missing from its state (assertions, exhaustive safety run);
- ``all_applied``: every committed event is eventually applied by both verifiers once
  the faults have happened (LTL under weak fairness; one verifier killable, one not —
  they do not interact, so both fates are covered).

It also checks the checker: with the bug of issue 10 switched on (an empty read taken
for a heartbeat, ``-DTRUST_SILENCE``) spin must find a violation. And the model must name
its states as the code does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tessera.core.freshness import Phase

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "docs" / "model" / "freshness.pml"


@pytest.fixture(scope="module")
def tools() -> tuple[str, str]:
    spin, gcc = shutil.which("spin"), shutil.which("gcc") or shutil.which("cc")
    if spin and gcc:
        return spin, gcc
    reason = "spin and a C compiler are needed (apt-get install spin gcc)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def check(tools: tuple[str, str], work: Path, *, liveness: bool,
          defines: tuple[str, ...] = ()) -> str:
    """Generate the verifier, compile it and run it; its report."""
    spin, gcc = tools
    work.mkdir()
    shutil.copy(MODEL, work / MODEL.name)
    run = dict(cwd=work, capture_output=True, text=True, timeout=600)
    generated = subprocess.run([spin, *defines, "-a", MODEL.name], **run)  # type: ignore[call-overload]
    assert generated.returncode == 0, generated.stdout + generated.stderr
    flags = ["-DNFAIR=3"] if liveness else ["-DSAFETY", "-DNOCLAIM"]
    built = subprocess.run([gcc, "-O2", "-DNOBOUNDCHECK", "-DSFH", *flags, "-o", "pan",
                            "pan.c"], **run)  # type: ignore[call-overload]
    assert built.returncode == 0, built.stderr[-2000:]
    args = ["./pan", "-m100000"] + (["-a", "-f"] if liveness else [])
    report = subprocess.run(args, **run)  # type: ignore[call-overload]
    return str(report.stdout)


def errors(report: str) -> int:
    found = re.search(r"errors: (\d+)", report)
    assert found, report
    return int(found.group(1))


def test_no_verifier_counts_itself_fresh_while_missing_an_event(
        tools: tuple[str, str], tmp_path: Path) -> None:
    report = check(tools, tmp_path / "safety", liveness=False)
    assert errors(report) == 0, report
    assert "assertion violations\t+" in report and "Search not completed" not in report
    assert "invalid end states\t+" in report


def test_every_committed_event_is_eventually_applied(tools: tuple[str, str],
                                                     tmp_path: Path) -> None:
    report = check(tools, tmp_path / "liveness", liveness=True, defines=("-DKILLABLE=1",))
    assert errors(report) == 0, report
    assert "never claim         \t+ (all_applied)" in report
    assert "acceptance   cycles \t+ (fairness enabled)" in report
    assert "Search not completed" not in report


def test_the_checker_finds_issue_10s_bug(tools: tuple[str, str], tmp_path: Path) -> None:
    report = check(tools, tmp_path / "mutant", liveness=False, defines=("-DTRUST_SILENCE",))
    assert errors(report) > 0 and "assertion violated" in report, report


def test_the_model_names_its_states_as_the_code_does() -> None:
    model = MODEL.read_text()
    assert re.search(r"mtype = \{ (\w+), (\w+), (\w+) \}", model).groups() == tuple(  # type: ignore[union-attr]
        p.name for p in Phase)
    code = (ROOT / "src" / "tessera" / "core" / "freshness.py").read_text()
    follower = (ROOT / "src" / "tessera" / "verifier" / "revocation" / "follower.py").read_text()
    for name in ("cursor", "fresh_at", "epoch", "head", "pending", "BusRewound", "BusGap"):
        assert name in model, name
    for name in ("fresh_at", "head", "epoch", "pending"):
        assert name in code, name
    for name in ("LOADING", "FOLLOWING", "FILLING", "freshness.pml"):
        assert name in follower + code, name
