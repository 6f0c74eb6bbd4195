"""Prometheus metrics of the identity service (names: units in the name, ``_total`` for
counters, ``tessera_`` prefix). Counters derive from committed audit events, so what is
counted is exactly what is audited; latency comes from the token endpoint.

==============================================  =========  ==================================
name                                            type       labels
==============================================  =========  ==================================
tessera_token_request_seconds                   histogram  grant_type, outcome (ok | error code)
tessera_tokens_issued_total                     counter    grant_type (incl. refresh, exchange)
tessera_token_request_errors_total              counter    grant_type, error
tessera_refresh_reuse_detected_total            counter
tessera_login_failures_total                    counter    reason
tessera_revocations_total                       counter    kind (session, token, version…)
tessera_audit_events_total                      counter    event
tessera_store_errors_total                      counter    endpoint (token)
tessera_outbox_relay_errors_total               counter    reason (bus_rewound, bus_unavailable,
                                                           store_error, unexpected)
tessera_worker_processes                        gauge      (livesum: workers serving now)
tessera_logout_completion_seconds               histogram
==============================================  =========  ==================================

``tessera_logout_completion_seconds``: from a revocation event's commit to the moment the
last live verifier reported having applied it (``identity.completion``; one observation
per event, by the process that recorded the completion).

``tessera_store_errors_total`` counts requests refused because the store failed: the token
endpoint answers ``temporarily_unavailable`` (503) only when a ``StoreError`` is raised
(``protocol/rfc6749/token_endpoint.py``), so that outcome is counted here too. It is the
session store availability SLI (``deploy/prometheus``, ``docs/metrics.md``).

``tessera_outbox_relay_errors_total`` counts failed passes of the outbox relays
(``bus.relay``), which carry revocations to the verifiers: ``unexpected`` is a bug or an
unmapped driver error, logged with its stack, after which the relay backs off and retries.

With several worker processes ``tessera serve`` runs prometheus-client's multiprocess mode
(``observability.multiprocess``): ``render`` then sums every worker's values, so any
worker answers with the service's totals. Every gauge here names its
``multiprocess_mode`` (``livesum`` for "how many right now", ``mostrecent`` for a value
that is the same in every worker); the default, ``all``, would publish one series per pid.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from tessera.observability import events, multiprocess
from tessera.store.ports import AuditRecord

__all__ = ["CONTENT_TYPE", "IdentityMetrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_REVOCATIONS = {
    events.SESSION_REVOKED: "session", events.TOKEN_REVOKED: "token",
    events.SESSION_VERSION_BUMPED: "session_version", events.TENANT_REVOKED: "tenant",
}
_COMPLETION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                       60.0, 300.0)
_ISSUED = {events.TOKEN_ISSUED, events.TOKEN_REFRESHED, events.TOKEN_EXCHANGED}
_STORE_UNAVAILABLE = "temporarily_unavailable"
"""The token endpoint's answer to a ``StoreError`` (and to nothing else)."""
_RELAY_ERRORS = ("bus_rewound", "bus_unavailable", "store_error", "unexpected")
"""The ``reason`` values ``bus.relay.OutboxRelay`` passes to ``on_error``."""


class _Children:
    """A labelled metric's children, each looked up once: ``labels()`` checks the values
    and takes the metric's lock on every call (~3 µs, several times per token request).
    Only for labels whose values are few and known (grant types, outcomes, event
    names)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class IdentityMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "tessera_token_request_seconds", "Token endpoint latency by grant and outcome.",
            ("grant_type", "outcome"), buckets=_LATENCY_BUCKETS, registry=r)
        self.issued = Counter("tessera_tokens_issued", "Access tokens issued, by grant.",
                              ("grant_type",), registry=r)
        self.errors = Counter("tessera_token_request_errors",
                              "Refused token requests by grant and OAuth error code.",
                              ("grant_type", "error"), registry=r)
        self.reuse = Counter("tessera_refresh_reuse_detected",
                             "Rotated refresh tokens presented again (family revoked).",
                             registry=r)
        self.login_failures = Counter("tessera_login_failures", "Failed logins by reason.",
                                      ("reason",), registry=r)
        self.revocations = Counter("tessera_revocations", "Revocations by grain.", ("kind",),
                                   registry=r)
        self.audit_events = Counter("tessera_audit_events", "Committed audit events.",
                                    ("event",), registry=r)
        # per request (token endpoint, every audit record): children looked up once
        self._audit_events = _Children(self.audit_events)
        self._issued = _Children(self.issued)
        self._request_seconds = _Children(self.request_seconds)
        self.store_errors = Counter("tessera_store_errors",
                                    "Requests refused because the store failed, by endpoint.",
                                    ("endpoint",), registry=r)
        self.store_errors.labels("token")
        self.outbox_relay_errors = Counter(
            "tessera_outbox_relay_errors", "Failed outbox relay passes, by reason "
            "(bus_rewound, bus_unavailable, store_error, unexpected).", ("reason",),
            registry=r)
        for reason in _RELAY_ERRORS:
            self.outbox_relay_errors.labels(reason)
        self.federation_failures = Counter(
            "tessera_federation_upstream_failures",
            "Upstream identity provider calls that failed, by reason (unavailable, refused).",
            ("reason",), registry=r)
        self.worker_processes = Gauge(
            "tessera_worker_processes", "Worker processes serving requests (summed over live "
            "workers).", registry=r, multiprocess_mode="livesum")
        self.logout_completion = Histogram(
            "tessera_logout_completion_seconds",
            "From a revocation's commit until every live verifier had applied it, seconds.",
            buckets=_COMPLETION_BUCKETS, registry=r)
        # outbound signals (issue 12, docs/signals.md)
        self.signal_deliveries = Counter(
            "tessera_signal_deliveries", "Back-channel logout and SSF push attempts, by "
            "channel, receiver (client or stream id) and outcome (delivered, retry, dead).",
            ("channel", "receiver", "outcome"), registry=r)
        self.signal_delivery_seconds = Histogram(
            "tessera_signal_delivery_seconds", "From the event to its delivery, by channel.",
            ("channel",), buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300, 1800),
            registry=r)
        self.signal_attempt_seconds = Histogram(
            "tessera_signal_attempt_seconds", "Duration of one push to a receiver, seconds.",
            ("channel",), buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.risk_signals = Counter("tessera_risk_signals",
                                    "Risk detections by detection and policy action.",
                                    ("detection", "action"), registry=r)

    def worker_started(self) -> None:
        """This process serves requests now (the app's lifespan startup)."""
        self.worker_processes.set(1)

    def worker_stopped(self) -> None:
        """Shutdown: this worker no longer counts, its live gauges leave the directory."""
        self.worker_processes.set(0)
        multiprocess.worker_exited()

    def on_audit(self, record: AuditRecord) -> None:
        event = record.event
        self._audit_events(event).inc()
        if event in _ISSUED:
            grant_type = {events.TOKEN_REFRESHED: "refresh_token",
                          events.TOKEN_EXCHANGED: "token_exchange"}.get(
                              event, str(record.fields.get("grant_type", "unknown")))
            self._issued(grant_type).inc()
        elif event == events.REFRESH_REUSE_DETECTED:
            self.reuse.inc()
        elif event == events.LOGIN_FAILED:
            self.login_failures.labels(str(record.fields.get("reason", "unknown"))).inc()
        if event in _REVOCATIONS:
            self.revocations.labels(_REVOCATIONS[event]).inc()

    def on_relay_error(self, reason: str) -> None:
        """``OutboxRelay(on_error=...)``: one failed relay pass."""
        self.outbox_relay_errors.labels(reason).inc()

    def on_token_request(self, grant_type: str, error: str | None, seconds: float) -> None:
        self._request_seconds(grant_type, error or "ok").observe(seconds)
        if error is not None:
            self.errors.labels(grant_type, error).inc()
            if error == _STORE_UNAVAILABLE:
                self.store_errors.labels("token").inc()

    def render(self) -> bytes:
        """The Prometheus text: every worker's total in multiprocess mode, else this
        process's registry."""
        if multiprocess.enabled():
            return bytes(generate_latest(multiprocess.collect_registry()))
        return bytes(generate_latest(self.registry))
