"""Prometheus metrics: decision outcomes by reason, decision latency, revocation lag and
cursor, JWKS fetches, feed reconnects; one registry per service; the /metrics app."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from tessera.core.clock import FixedClock
from tessera.verifier import Denied
from tessera.verifier.metrics import metrics_app
from tessera.verifier.revocation import SourceUnavailable
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings
from tests.polling import eventually

from ._services import fresh, make_service, revoke_session
from ._support import AUDIENCE, ISSUER, NOW, Minter


@pytest.fixture
async def service(minter: Minter) -> AsyncIterator[VerifierService]:
    service, _ = make_service(minter, fed=False)
    yield service
    await service.aclose()


def sample(service: VerifierService, name: str, **labels: str) -> float | None:
    return service.registry.get_sample_value(name, labels)


async def test_decisions_are_counted_by_outcome_and_reason(service: VerifierService,
                                                          minter: Minter) -> None:
    fresh(service)
    token = minter.mint()
    await service.check(token)
    await service.check(token, scopes=["orders:read"])
    revoke_session(service)
    for _ in range(3):
        with pytest.raises(Denied):
            await service.check(token)
    with pytest.raises(Denied):
        await service.check(None)
    decisions = "tessera_verifier_decisions_total"
    assert sample(service, decisions, outcome="allowed", reason="valid") == 2
    assert sample(service, decisions, outcome="denied", reason="session_revoked") == 3
    assert sample(service, decisions, outcome="denied", reason="missing_token") == 1
    assert sample(service, decisions, outcome="denied", reason="expired") is None
    assert sample(service, "tessera_verifier_decision_seconds_count", outcome="allowed") == 2
    assert sample(service, "tessera_verifier_decision_seconds_count", outcome="denied") == 4


async def test_stale_rejections_are_their_own_reason(service: VerifierService,
                                                     minter: Minter) -> None:
    with pytest.raises(Denied):
        await service.check(minter.mint(), strict=True)
    assert sample(service, "tessera_verifier_decisions_total", outcome="denied",
                  reason="stale_state") == 1


async def test_lag_and_cursor_are_read_at_scrape_time(service: VerifierService) -> None:
    assert sample(service, "tessera_verifier_revocation_lag_seconds") == float("inf")
    assert sample(service, "tessera_verifier_revocation_cursor") == 0
    assert sample(service, "tessera_verifier_revocation_loaded") == 0
    service.state.load_snapshot({"seq": 4, "events": []}, now=NOW - 9)
    service.state.apply({"seq": 5, "kind": "token.revoked", "key": "jti-1", "at": NOW,
                         "expires_at": NOW + 60}, now=NOW - 8)
    assert sample(service, "tessera_verifier_revocation_loaded") == 1
    assert sample(service, "tessera_verifier_revocation_lag_seconds") == float("inf")
    service.state.observe_watermark({"head": 5, "at": NOW - 7, "epoch": "e1"}, now=NOW - 6)
    assert sample(service, "tessera_verifier_revocation_lag_seconds") == 7
    assert sample(service, "tessera_verifier_revocation_cursor") == 5
    assert sample(service, "tessera_verifier_revocation_entries") == 1
    assert isinstance(service.clock, FixedClock)
    service.clock.advance(3)
    assert sample(service, "tessera_verifier_revocation_lag_seconds") == 10


async def test_jwks_fetches_are_exported(service: VerifierService, minter: Minter) -> None:
    fresh(service)
    assert sample(service, "tessera_verifier_jwks_fetches_total") == 0
    await service.check(minter.mint())
    await service.check(minter.mint())
    assert sample(service, "tessera_verifier_jwks_fetches_total") == 1
    assert sample(service, "tessera_verifier_jwks_fetch_failures_total") == 0


class DownSource:
    """An event source whose server is down."""

    async def snapshot(self) -> Mapping[str, Any]:
        raise SourceUnavailable("down")

    async def events_after(self, after: int) -> Mapping[str, Any]:
        raise SourceUnavailable("down")

    async def follow(self, after: int) -> Any:
        raise SourceUnavailable("down")
        yield []  # pragma: no cover

    async def aclose(self) -> None:
        return None


async def test_feed_reconnects_are_exported() -> None:
    settings = VerifierSettings(issuer=ISSUER, audience=AUDIENCE, source="none")
    service = VerifierService(settings, event_source=DownSource(), clock=FixedClock(NOW),
                              transport=httpx.MockTransport(lambda _: httpx.Response(503)))
    await service.start(wait=0)
    try:
        await eventually(
            lambda: (sample(service, "tessera_verifier_feed_reconnects_total") or 0) >= 2,
            what="two reconnects")
        assert (sample(service, "tessera_verifier_jwks_fetch_failures_total") or 0) >= 1
    finally:
        await service.aclose()


async def test_every_service_has_its_own_registry(minter: Minter) -> None:
    first, _ = make_service(minter)
    second, _ = make_service(minter)
    settings = VerifierSettings(issuer=ISSUER, audience=AUDIENCE, source="none")
    default = VerifierService(settings)
    assert len({id(first.registry), id(second.registry), id(default.registry)}) == 3
    fresh(first)
    await first.check(minter.mint())
    assert sample(second, "tessera_verifier_decisions_total", outcome="allowed",
                  reason="valid") is None
    for service in (first, second, default):
        await service.aclose()


async def test_metrics_app_serves_the_text_format(service: VerifierService,
                                                  minter: Minter) -> None:
    fresh(service)
    await service.check(minter.mint())
    transport = httpx.ASGITransport(app=metrics_app(service.registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'tessera_verifier_decisions_total{outcome="allowed",reason="valid"} 1.0' in text
    for name in ("tessera_verifier_decision_seconds_bucket",
                 "tessera_verifier_revocation_lag_seconds ",
                 "tessera_verifier_revocation_cursor ", "tessera_verifier_jwks_fetches_total ",
                 "tessera_verifier_feed_reconnects_total "):
        assert name in text, name


def test_propagation_histogram_observes_commit_to_apply_time() -> None:
    from tessera.verifier.metrics import VerifierMetrics

    metrics = VerifierMetrics()
    metrics.observe_applied({"at": 100.0}, 100.02)
    metrics.observe_applied({"at": 100.0}, 101.0)
    metrics.observe_applied({"at": "junk"}, 101.0)  # ignored, never raises
    name = "tessera_verifier_revocation_propagation_seconds"
    assert metrics.registry.get_sample_value(f"{name}_count") == 2
    assert metrics.registry.get_sample_value(f"{name}_bucket", {"le": "0.025"}) == 1
    assert abs((metrics.registry.get_sample_value(f"{name}_sum") or 0) - 1.02) < 1e-9


def test_stage_histogram_splits_an_event_by_the_stamps_it_carries() -> None:
    from tessera.verifier.metrics import VerifierMetrics

    metrics = VerifierMetrics()
    metrics.observe_applied({"at": 100.0, "timing": {
        "relay_woken": 100.004, "relay_read": 100.005, "bus_added": 100.0055,
        "received": 100.006}}, 100.0065)
    metrics.observe_applied({"at": 100.0, "timing": {"bus_added": 100.01,
                                                      "received": "junk"}}, 100.02)
    metrics.observe_applied({"at": 100.0}, 100.02)  # no stamps (HTTP feed): no stage
    name = "tessera_verifier_revocation_stage_seconds"

    def stage(label: str, suffix: str = "sum") -> float | None:
        return metrics.registry.get_sample_value(f"{name}_{suffix}", {"stage": label})

    expected = {"recorded_to_relay_woken": 0.004, "relay_woken_to_relay_read": 0.001,
                "relay_read_to_bus_added": 0.0005, "bus_added_to_received": 0.0005,
                "received_to_applied": 0.0005}
    for label, seconds in expected.items():
        assert stage(label, "count") == 1, label
        assert abs((stage(label) or 0) - seconds) < 1e-6, label
    assert metrics.registry.get_sample_value(
        "tessera_verifier_revocation_propagation_seconds_count") == 3


def test_path_histograms_count_a_value_on_a_bound_in_that_bucket_and_scrape_whole() -> None:
    """The propagation and stage histograms are plain counts the follower's loop keeps
    (no lock per observation); exposed as Prometheus histograms: cumulative buckets,
    ``le`` inclusive, every stage present before its first sample."""
    from tessera.verifier.metrics import VerifierMetrics

    metrics = VerifierMetrics()
    name = "tessera_verifier_revocation_propagation_seconds"
    for lag in (0.005, 0.0051, 31.0):
        metrics.observe_applied({"at": 100.0}, 100.0 + lag)
    metrics.observe_applied({"at": True}, 101.0)  # a bool is not a time
    sample = metrics.registry.get_sample_value
    assert sample(f"{name}_bucket", {"le": "0.005"}) == 1
    assert sample(f"{name}_bucket", {"le": "0.01"}) == 2
    assert sample(f"{name}_bucket", {"le": "30.0"}) == 2
    assert sample(f"{name}_bucket", {"le": "+Inf"}) == sample(f"{name}_count") == 3
    stage = "tessera_verifier_revocation_stage_seconds_count"
    for label in ("recorded_to_relay_woken", "relay_woken_to_relay_read",
                  "relay_read_to_bus_added", "bus_added_to_received", "received_to_applied"):
        assert sample(stage, {"stage": label}) == 0, label


def test_the_stages_form_one_path_and_a_missing_stamp_skips_only_its_two_stages() -> None:
    """``observe_applied`` reads each stamp once and takes neighbours' differences, which
    needs the stages to be one path (each ends where the next begins)."""
    from tessera.verifier.metrics import _STAGES, VerifierMetrics

    assert all(a[1] == b[0] for a, b in itertools.pairwise(_STAGES))
    assert (_STAGES[0][0], _STAGES[-1][1]) == ("recorded", "applied")
    metrics = VerifierMetrics()
    metrics.observe_applied({"at": 100.0, "timing": {
        "relay_woken": 100.004, "relay_read": True, "bus_added": 100.006,
        "received": 100.005}}, 100.0065)  # a bool is no stamp; a clock step back counts 0

    def count(label: str, suffix: str = "count") -> float | None:
        return metrics.registry.get_sample_value(
            f"tessera_verifier_revocation_stage_seconds_{suffix}", {"stage": label})

    assert [count(f"{a}_to_{b}") for a, b in _STAGES] == [1, 0, 0, 1, 1]
    assert count("bus_added_to_received", "sum") == 0.0
    assert abs((count("received_to_applied", "sum") or 0) - 0.0015) < 1e-9
