"""Outbound signals, wired: fan-out, delivery, metrics, risk (one per identity process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from tessera.application.transaction import Transaction, transaction
from tessera.core.clock import Clock
from tessera.core.signals import Delivery
from tessera.identity.signals.delivery import Outcome, Pusher, Resolver
from tessera.identity.signals.fanout import FanOut
from tessera.keys import RingHolder, Sealer
from tessera.observability.audit import AuditLog
from tessera.observability.metrics import IdentityMetrics
from tessera.protocol.clients import ClientDirectory
from tessera.protocol.token_state import AccessTokenState
from tessera.settings import Settings
from tessera.store.ports import Store

__all__ = ["SignalMetrics", "Signals", "SignalsHost", "build_signals"]


class SignalsHost(Protocol):
    """What signals use of the identity service. ``identity.compose.Identity`` is one;
    it builds this package, so naming it here would make the two import each other."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> Store: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def audit(self) -> AuditLog: ...
    @property
    def keys(self) -> RingHolder: ...
    @property
    def metrics(self) -> IdentityMetrics: ...
    @property
    def clients(self) -> ClientDirectory: ...
    @property
    def token_state(self) -> AccessTokenState: ...


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
    identity: SignalsHost
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


def build_signals(identity: SignalsHost, *, transport: httpx.AsyncBaseTransport | None = None,
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
    identity.store.hand_off_outbox(fanout)  # its own commits; the watch: everyone's
    return signals
