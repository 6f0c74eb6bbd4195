"""Outbound signals, wired: fan-out, delivery, metrics, risk (one per identity process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from tessera.application.transaction import Transaction, transaction
from tessera.core.signals import Delivery
from tessera.identity.signals.delivery import Outcome, Pusher, Resolver
from tessera.identity.signals.fanout import FanOut
from tessera.keys import Sealer
from tessera.observability.metrics import IdentityMetrics

if TYPE_CHECKING:
    from tessera.identity.compose import Identity

__all__ = ["SignalMetrics", "Signals", "build_signals"]


class SignalMetrics:
    """The delivery metrics (declared in ``observability.metrics``)."""

    def __init__(self, metrics: IdentityMetrics) -> None:
        self.deliveries = metrics.signal_deliveries
        self.latency = metrics.signal_delivery_seconds
        self.attempt_seconds = metrics.signal_attempt_seconds

    def on_attempt(self, delivery: Delivery, outcome: Outcome, seconds: float,
                   now: float) -> None:
        self.deliveries.labels(delivery.channel, delivery.target, outcome.status).inc()
        self.attempt_seconds.labels(delivery.channel).observe(seconds)
        if outcome.status == "delivered":
            self.latency.labels(delivery.channel).observe(max(0.0, now - delivery.created_at))


@dataclass
class Signals:
    identity: Identity
    fanout: FanOut
    pusher: Pusher
    sealer: Sealer
    metrics: SignalMetrics
    queued: asyncio.Event = field(default_factory=asyncio.Event)
    """Set (and cleared) whenever new deliveries were stored: long polls wake on it."""

    def delivered_or_queued(self) -> None:
        self.pusher.notify()
        self.queued.set()
        self.queued.clear()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with transaction(self.identity.store, self.identity.audit) as tx:
            yield tx

    def start(self) -> None:
        self.fanout.start()
        self.pusher.start()

    async def aclose(self) -> None:
        await self.fanout.aclose()
        await self.pusher.aclose()


def build_signals(identity: Identity, *, transport: httpx.AsyncBaseTransport | None = None,
                  resolver: Resolver | None = None) -> Signals:
    from tessera.keys.derivation import derive_key

    settings = identity.settings
    sealer = Sealer(derive_key(settings.key_encryption_key(), "signals"))
    metrics = SignalMetrics(identity.metrics)
    fanout = FanOut(identity.store, identity.keys, identity.clock, issuer=settings.issuer,
                    settings=settings.signals)

    def observe(delivery: Delivery, outcome: Outcome, seconds: float) -> None:
        metrics.on_attempt(delivery, outcome, seconds, identity.clock.now())

    pusher = Pusher(identity.store, identity.clock, identity.audit, issuer=settings.issuer,
                    settings=settings.signals, sealer=sealer, observe=observe,
                    transport=transport, resolver=resolver)
    signals = Signals(identity, fanout, pusher, sealer, metrics)
    fanout.on_enqueued.append(signals.delivered_or_queued)
    identity.store.on_outbox_commit(fanout.notify)
    return signals
