"""The chaos suite's short experiments (the three failures of issue 10), each against real
processes it starts itself: ``tessera serve``, verifier processes and, where needed, a
redis-server of its own (never the machine's). ``bench/chaos.py`` runs the full set.

Each must report 0 revoked tokens accepted beyond the documented bound, 0 events lost,
0 legitimate sessions lost, and a recovery once the fault ends."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.chaos import experiments
from tests.chaos._rig import Outcome
from tests.conftest import POSTGRES_URL, REDIS_URL, require_service

pytestmark = pytest.mark.slow


def chaos(tmp_path: Path, template: Path) -> experiments.Chaos:
    return experiments.Chaos(tmp_path, template, hold=2.5, verifiers=2,
                             bound=2.0, postgres_url=POSTGRES_URL)


def assert_clean(outcome: Outcome) -> None:
    assert outcome.revoked_accepted_beyond_bound == 0, outcome
    assert outcome.events_lost == 0, outcome
    assert outcome.sessions_lost == 0, outcome
    assert outcome.recovery_seconds is not None, outcome
    assert outcome.probes > 0, outcome


@pytest.mark.redis
async def test_redis_back_empty_while_the_identity_service_is_down_fails_closed(
        tmp_path: Path, sqlite_template: Path) -> None:
    require_service(REDIS_URL, "redis")  # CI provides redis-server alongside its Redis
    assert shutil.which("redis-server")
    outcome = await experiments.redis_restart_empty_without_identity(
        chaos(tmp_path, sqlite_template))
    assert_clean(outcome)


@pytest.mark.postgres
async def test_a_verifier_started_without_a_snapshot_refuses_until_it_has_one(
        tmp_path: Path, sqlite_template: Path) -> None:
    require_service(POSTGRES_URL, "postgres")
    outcome = await experiments.verifier_restart_snapshot_unavailable(
        chaos(tmp_path, sqlite_template))
    assert_clean(outcome)


async def test_a_refresh_answer_lost_in_a_crash_keeps_the_user_logged_in(
        tmp_path: Path, sqlite_template: Path) -> None:
    outcome = await experiments.identity_killed_mid_refresh(chaos(tmp_path, sqlite_template))
    assert_clean(outcome)
    assert "theft detected" in outcome.notes, outcome.notes
    assert not any("grace" in note for note in outcome.notes), outcome.notes
