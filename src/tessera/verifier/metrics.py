"""Prometheus metrics of one verifier (DESIGN §7). Units are in the names.

=============================================  =========  ==================================
name                                           type       meaning
=============================================  =========  ==================================
``tessera_verifier_decisions_total``           counter    decisions by ``outcome``
                                                          (allowed/denied) and ``reason``
                                                          (the decision-log reason)
``tessera_verifier_decision_seconds``          histogram  time to decide, by ``outcome``
``tessera_verifier_introspections_total``      counter    strict-route fallbacks to the
                                                          issuer, by ``result``
                                                          (active/inactive/error)
``tessera_verifier_revocation_stage_seconds``  histogram  one applied event's path by
                                                          ``stage``: ``recorded_to_relay_
                                                          woken`` (commit, then notify),
                                                          ``relay_woken_to_relay_read``
                                                          (wake-up + outbox read),
                                                          ``relay_read_to_bus_added``
                                                          (publish), ``bus_added_to_
                                                          received`` (bus delivery),
                                                          ``received_to_applied``; only
                                                          for events whose bus stamps
                                                          them (Redis Streams: the last
                                                          event of each read)
``tessera_verifier_revocation_lag_seconds``    gauge      seconds since the newest
                                                          watermark the state holds: how
                                                          far behind the source of truth
                                                          it may be (``+Inf``: never
                                                          proven fresh)
``tessera_verifier_revocation_loaded``         gauge      1 once a snapshot was loaded;
                                                          0: every route refuses
``tessera_verifier_revocation_cursor``         gauge      ``seq`` of the last applied event
``tessera_verifier_revocation_entries``        gauge      entries held in the local state
``tessera_verifier_jwks_fetches_total``        counter    JWKS fetch attempts
``tessera_verifier_jwks_fetch_failures_total`` counter    JWKS fetch attempts that failed
``tessera_verifier_feed_reconnects_total``     counter    feed connections re-established
``tessera_verifier_feed_resyncs_total``        counter    gaps recovered from the identity
                                                          service (range or snapshot)
``tessera_verifier_feed_epoch_changes_total``  counter    the channel turned out to be a
                                                          new incarnation (Redis restarted
                                                          empty, failover, another worker)
=============================================  =========  ==================================

Each ``VerifierMetrics`` uses its own ``CollectorRegistry`` unless one is passed, so
several services (or tests) in one process never collide.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from itertools import accumulate
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Receive, Scope, Send

from tessera.core.clock import Clock
from tessera.verifier.decisions import Decision
from tessera.verifier.jwks import JwksCache
from tessera.verifier.revocation.follower import RevocationFollower
from tessera.verifier.revocation.state import RevocationState

__all__ = ["VerifierMetrics", "metrics_app"]

_BUCKETS: Final = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                   0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


_PROPAGATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STAGE_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                         0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_STAGES: Final = (("recorded", "relay_woken"), ("relay_woken", "relay_read"),
                  ("relay_read", "bus_added"),
                  ("bus_added", "received"), ("received", "applied"))
"""The stamps of ``tessera.bus.ports.TIMING_KEYS`` between the event's ``at`` (recorded)
and the follower's time of applying it, in path order."""


class VerifierMetrics:
    """Decision counters and histogram, plus the state, JWKS and feed read at scrape time."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.decisions = Counter(
            "tessera_verifier_decisions", "Access decisions by outcome and reason.",
            ("outcome", "reason"), registry=self.registry)
        self.decision_seconds = Histogram(
            "tessera_verifier_decision_seconds", "Time to reach an access decision, seconds.",
            ("outcome",), buckets=_BUCKETS, registry=self.registry)
        self.introspections = Counter(
            "tessera_verifier_introspections",
            "Introspection fallbacks while the revocation state was stale or never loaded.",
            ("result",), registry=self.registry)
        self.propagation_seconds = _Buckets(_PROPAGATION_BUCKETS)
        stages = [(start, end, _Buckets(_STAGE_BUCKETS)) for start, end in _STAGES]
        self._stages = [(end, histogram) for _, end, histogram in stages]
        """(the stamp a stage ends at, its histogram), in path order."""
        self.registry.register(_PathCollector(self.propagation_seconds, stages))
        self._children: dict[tuple[bool, str], tuple[Counter, Histogram]] = {}

    def observe_applied(self, event: Mapping[str, Any], now: float) -> None:
        """Called by the follower for every event applied: kept to a few list updates.
        The stages are consecutive (``_STAGES``), so the stamps are read once, in path
        order, and each stage is the difference of two neighbours."""
        at: Any = event.get("at")
        if type(at) not in _NUMBER:
            at = None
        else:
            self.propagation_seconds.observe(now - at if now > at else 0.0)
        timing = event.get("timing")
        if timing is None or not isinstance(timing, Mapping):
            return
        begin: Any = at
        for name, histogram in self._stages:
            finish: Any = now if name == "applied" else timing.get(name)
            if type(finish) not in _NUMBER:
                finish = None
            elif begin is not None:
                histogram.observe(finish - begin if finish > begin else 0.0)
            begin = finish

    def observe(self, decision: Decision) -> None:
        key = (decision.allowed, decision.reason)
        children = self._children.get(key)
        if children is None:
            outcome = "allowed" if decision.allowed else "denied"
            children = (self.decisions.labels(outcome, decision.reason),
                        self.decision_seconds.labels(outcome))
            self._children[key] = children
        children[0].inc()
        children[1].observe(decision.latency)

    def watch(self, state: RevocationState, *, clock: Clock, jwks: JwksCache | None = None,
              follower: RevocationFollower | None = None) -> None:
        """Export the revocation state's lag and cursor, and the JWKS and feed counters."""
        self.registry.register(_StateCollector(state, clock, jwks, follower))


class _StateCollector:
    def __init__(self, state: RevocationState, clock: Clock, jwks: JwksCache | None,
                 follower: RevocationFollower | None) -> None:
        self._state = state
        self._clock = clock
        self._jwks = jwks
        self._follower = follower

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        state, jwks, follower = self._state, self._jwks, self._follower
        yield GaugeMetricFamily(
            "tessera_verifier_revocation_lag_seconds",
            "Seconds since the newest watermark of the identity service the revocation "
            "state holds (how stale it may be).",
            value=state.lag(self._clock.now()))
        yield GaugeMetricFamily("tessera_verifier_revocation_loaded",
                                "1 once a revocation snapshot was loaded, else 0.",
                                value=1 if state.loaded else 0)
        yield GaugeMetricFamily("tessera_verifier_revocation_cursor",
                                "Sequence number of the last applied revocation event.",
                                value=state.cursor)
        yield GaugeMetricFamily("tessera_verifier_revocation_entries",
                                "Entries held in the local revocation state.", value=len(state))
        yield CounterMetricFamily("tessera_verifier_jwks_fetches", "JWKS fetch attempts.",
                                  value=jwks.fetches if jwks else 0)
        yield CounterMetricFamily("tessera_verifier_jwks_fetch_failures",
                                  "JWKS fetch attempts that failed.",
                                  value=jwks.failures if jwks else 0)
        yield CounterMetricFamily("tessera_verifier_feed_reconnects",
                                  "Revocation feed connections re-established after a failure.",
                                  value=follower.reconnects if follower else 0)
        yield CounterMetricFamily("tessera_verifier_feed_resyncs",
                                  "Gaps in the revocation feed recovered from the identity "
                                  "service (a range or a snapshot).",
                                  value=follower.resyncs if follower else 0)
        yield CounterMetricFamily("tessera_verifier_feed_epoch_changes",
                                  "Times the revocation channel was a new incarnation.",
                                  value=follower.epoch_changes if follower else 0)


_NUMBER: Final = frozenset({int, float})
"""Stamps that count: a number, never a ``bool`` (an ``int`` subclass)."""


class _Buckets:
    """One histogram's counts, written by the follower's event loop alone: no lock per
    observation, where ``prometheus_client`` takes two (twelve per applied event across
    the propagation and stage histograms). A scrape from another thread reads the counts
    as they are at that moment."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.total += value

    def samples(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` pairs in exposition order, and the sum."""
        counts, total = list(self.counts), self.total
        return list(zip([*map(floatToGoString, self.bounds), "+Inf"],
                        accumulate(counts), strict=True)), total


class _PathCollector:
    """``tessera_verifier_revocation_propagation_seconds`` and ``..._stage_seconds``."""

    def __init__(self, propagation: _Buckets,
                 stages: list[tuple[str, str, _Buckets]]) -> None:
        self._propagation = propagation
        self._stages = stages

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(
            "tessera_verifier_revocation_propagation_seconds",
            "From a revocation's commit at the identity service (event ``at``) to its "
            "application in this verifier, seconds (clocks of both hosts; an SLI).",
            labels=())
        buckets, total = self._propagation.samples()
        family.add_metric((), buckets, total)
        yield family
        family = HistogramMetricFamily(
            "tessera_verifier_revocation_stage_seconds",
            "One applied revocation's path by stage (from the stamps its bus carries: "
            "recorded, relay read, bus added, received), seconds.", labels=("stage",))
        for start, end, histogram in self._stages:
            buckets, total = histogram.samples()
            family.add_metric((f"{start}_to_{end}",), buckets, total)
        yield family


def metrics_app(registry: CollectorRegistry) -> ASGIApp:
    """A tiny ASGI app serving ``registry`` in the Prometheus text format. An object, not a
    function, so Starlette's ``Route("/metrics", metrics_app(...))`` treats it as an ASGI
    app (``Mount`` works too). Protect it at the network layer: it is not behind the
    verifier."""
    return _MetricsApp(registry)


class _MetricsApp:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = generate_latest(self._registry)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_PLAIN_0_0_4.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})
