"""Prometheus metrics of the gateway, in the verifier SDK's registry (one ``/metrics``).

The SDK already exports every decision (``tessera_verifier_decisions_total`` by outcome
and reason, ``tessera_verifier_decision_seconds``), the revocation lag and JWKS/feed
counters. The gateway adds:

=========================================  =========  =====================================
name                                       type       meaning
=========================================  =========  =====================================
``tessera_gateway_decisions_total``        counter    answers by deciding ``rule``
                                                      (``routes[i]``, ``default``, ``none``)
                                                      and ``status`` (200/401/403)
``tessera_gateway_exchanges_total``        counter    token exchanges by ``result``: ``hit``
                                                      (cache or shared call), ``miss``
                                                      (called the identity service),
                                                      ``failure``
``tessera_gateway_exchange_cache_entries`` gauge      exchanged tokens held
=========================================  =========  =====================================
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from tessera.gateway.decision import Decision
from tessera.gateway.exchange import TokenExchanger

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry,
                 exchanger: TokenExchanger | None = None) -> None:
        self.registry = registry
        self.decisions = Counter("tessera_gateway_decisions",
                                 "Edge gateway answers by deciding rule and status.",
                                 ("rule", "status"), registry=registry)
        self._children: dict[tuple[str, int], Counter] = {}
        if exchanger is not None:
            registry.register(_ExchangeCollector(exchanger))

    def observe(self, decision: Decision) -> None:
        key = (decision.rule_label, decision.status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.decisions.labels(key[0], str(key[1]))
        child.inc()


class _ExchangeCollector:
    def __init__(self, exchanger: TokenExchanger) -> None:
        self._exchanger = exchanger

    def describe(self) -> Iterable[Metric]:
        return self.collect()

    def collect(self) -> Iterable[Metric]:
        exchanger = self._exchanger
        exchanges = CounterMetricFamily("tessera_gateway_exchanges",
                                        "RFC 8693 token exchanges for upstreams by result.",
                                        labels=("result",))
        exchanges.add_metric(("hit",), exchanger.hits)
        exchanges.add_metric(("miss",), exchanger.misses)
        exchanges.add_metric(("failure",), exchanger.failures)
        yield exchanges
        yield GaugeMetricFamily("tessera_gateway_exchange_cache_entries",
                                "Exchanged tokens held in the cache.",
                                value=len(exchanger.cache))
