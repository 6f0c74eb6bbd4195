"""The identity service's per-request metrics (``observability.metrics``)."""

from __future__ import annotations

import pytest
from prometheus_client import Counter, Histogram

from tessera.observability import events
from tessera.observability.metrics import IdentityMetrics
from tessera.store.ports import AuditRecord


def _value(metrics: IdentityMetrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_per_request_metrics_count_each_event_and_look_their_children_up_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Token requests and audit records are counted per grant and outcome, as before;
    ``labels()`` (value checks and a lock, several per token request) runs once per
    label set."""
    metrics = IdentityMetrics()
    lookups: list[tuple[str, ...]] = []
    for cls in (Counter, Histogram):
        original = cls.labels

        def counted(self, *values, _original=original):  # type: ignore[no-untyped-def]
            lookups.append(values)
            return _original(self, *values)

        monkeypatch.setattr(cls, "labels", counted)
    issued = AuditRecord(events.TOKEN_ISSUED, at=1.0,
                         fields={"grant_type": "client_credentials"})
    for _ in range(3):
        metrics.on_audit(issued)
        metrics.on_token_request("client_credentials", None, 0.002)
    metrics.on_token_request("client_credentials", "invalid_scope", 0.001)
    assert _value(metrics, "tessera_audit_events_total", {"event": events.TOKEN_ISSUED}) == 3
    assert _value(metrics, "tessera_tokens_issued_total",
                  {"grant_type": "client_credentials"}) == 3
    assert _value(metrics, "tessera_token_request_seconds_count",
                  {"grant_type": "client_credentials", "outcome": "ok"}) == 3
    assert _value(metrics, "tessera_token_request_seconds_count",
                  {"grant_type": "client_credentials", "outcome": "invalid_scope"}) == 1
    assert _value(metrics, "tessera_token_request_errors_total",
                  {"grant_type": "client_credentials", "error": "invalid_scope"}) == 1
    assert lookups.count((events.TOKEN_ISSUED,)) == 1
    assert lookups.count(("client_credentials",)) == 1
    assert lookups.count(("client_credentials", "ok")) == 1
