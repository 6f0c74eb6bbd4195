"""``EnvelopeVerifier``: what a queue consumer calls for every message.

It wraps the pure ``verify_envelope`` with the consumer's clock, a bounded replay set
(envelope ``jti`` → body hash, kept until the envelope expires) and the decision log: one
``access.allowed`` / ``access.denied`` JSON line on ``tessera.audit`` per message, in the
schema of ``_decisions`` plus the envelope's fields::

    {"event": "access.denied", "at": 1800000000.0, "service": "billing-worker",
     "route": "orders.created", "decision": "denied", "reason": "session_revoked",
     "status": 401, "user_id": "...", "tenant_id": "...", "client_id": "...",
     "jti": "<envelope jti>", "sid_hash": "...", "correlation_id": "<req>",
     "latency_us": 35, "publisher": "checkout", "policy": "authorized_at_emission",
     "basis": "emission_time", "emitted_at": 1799999990.0}

An accepted envelope whose actor is revoked now but was not at emission is logged as
``access.allowed`` with ``basis: "emission_time"`` and ``revoked: "<reason>"``. Neither
the envelope nor any token is ever logged: identifiers and ``sid_hash`` only.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, Protocol

import orjson

from tessera.core.clock import Clock
from tessera.core.secrets import token_hash
from tessera.verifier._keyset import KeySet
from tessera.verifier.decisions import ALLOWED_VALID, AUDIT_LOGGER, Decision, DecisionLog
from tessera.verifier.envelope.claims import (
    REPLAYED,
    EnvelopeClaims,
    EnvelopeDenied,
    EnvelopePolicy,
    RevocationPolicy,
    VerifiedEnvelope,
)
from tessera.verifier.envelope.verify import PublisherKeys, verify_envelope
from tessera.verifier.errors import Reason
from tessera.verifier.revocation.history import RevocationHistory
from tessera.verifier.revocation.state import RevocationState

__all__ = [
    "EnvelopeVerifier",
    "SeenEnvelopes",
]

DEFAULT_MAX_SEEN: Final = 100_000


class SeenEnvelopes(Protocol):
    """Where a consumer remembers accepted envelopes: ``_SeenEnvelopes`` (this process)
    or ``RedisSeenEnvelopes`` (every replica)."""

    def claim(self, key: tuple[str, str], msg: str, keep_until: float,
              now: float) -> str | None: ...


class _SeenEnvelopes:
    """(publisher, jti) → (body hash, keep until), oldest first; bounded. Past ``exp`` +
    leeway an envelope is refused as expired anyway, so nothing older is needed."""

    def __init__(self, max_entries: int) -> None:
        if max_entries <= 0:
            raise ValueError("max_seen must be positive")
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    def get(self, key: tuple[str, str], now: float) -> str | None:
        entry = self._entries.get(key)
        return entry[0] if entry is not None and entry[1] > now else None

    def claim(self, key: tuple[str, str], msg: str, keep_until: float,
              now: float) -> str | None:
        """Remember ``key`` with ``msg`` unless another body is remembered; the body hash
        remembered before (None: first time). ``RedisSeenEnvelopes`` does the same for
        every replica of a consumer."""
        before = self.get(key, now)
        if before is None or before == msg:
            self.add(key, msg, keep_until, now)
        return before

    def add(self, key: tuple[str, str], msg: str, keep_until: float, now: float) -> None:
        entries = self._entries
        entries[key] = (msg, keep_until)
        entries.move_to_end(key)
        while entries:
            oldest = next(iter(entries.values()))
            if oldest[1] > now and len(entries) <= self._max:
                break
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class EnvelopeVerifier:
    """Verifies identity envelopes for one consumer (``policy.audience``).

    ``revocation_state`` is the consumer's own, kept current by a ``RevocationFollower``;
    ``history`` (fed through ``history.recording(source, clock=...)``) is required for
    ``authorized_at_emission`` and lets ``reject_revoked`` vouch past the access token's
    expiry. ``verify`` is synchronous and does no I/O (one Redis round trip when
    ``seen`` is a ``RedisSeenEnvelopes``, shared by the consumer's replicas).
    """

    def __init__(self, policy: EnvelopePolicy, *,
                 publishers: PublisherKeys | Mapping[str, KeySet | Mapping[str, Any]],
                 revocation_state: RevocationState, clock: Clock,
                 history: RevocationHistory | None = None, service: str | None = None,
                 logger: logging.Logger | None = None, max_seen: int = DEFAULT_MAX_SEEN,
                 timer: Callable[[], float] = time.perf_counter,
                 seen: SeenEnvelopes | None = None) -> None:
        if policy.revocation is RevocationPolicy.AUTHORIZED_AT_EMISSION and history is None:
            raise ValueError("authorized_at_emission needs a RevocationHistory: the "
                             "revocation state keeps no revocation times")
        if history is not None and history.retain < policy.max_lifetime:
            raise ValueError("history.retain must be at least policy.max_lifetime")
        self.policy = policy
        self.publishers = (publishers if isinstance(publishers, PublisherKeys)
                           else PublisherKeys(publishers))
        self.state = revocation_state
        self.history = history
        self._clock = clock
        self._timer = timer
        self._seen: SeenEnvelopes = seen if seen is not None else _SeenEnvelopes(max_seen)
        self._logger = logger if logger is not None else logging.getLogger(AUDIT_LOGGER)
        self._decisions = DecisionLog(service or policy.audience, clock=clock,
                                      logger=self._logger)

    def trust(self, publisher: str, keys: KeySet | Mapping[str, Any]) -> None:
        """Trust ``publisher``'s current keys (after it rotated), replacing the old ones."""
        self.publishers = self.publishers.with_publisher(publisher, keys)

    def verify(self, envelope: str, body: bytes) -> VerifiedEnvelope:
        """The accepted envelope for ``body``, or ``EnvelopeDenied``; logs the decision."""
        started = self._timer()
        now = self._clock.now()
        try:
            result = verify_envelope(envelope, body, publishers=self.publishers,
                                     policy=self.policy, revocation_state=self.state,
                                     history=self.history, now=now)
            result = self._remember(result, now)
        except EnvelopeDenied as denied:
            self._emit_denied(denied, self._timer() - started)
            raise
        self._emit_allowed(result, self._timer() - started)
        return result

    def _remember(self, result: VerifiedEnvelope, now: float) -> VerifiedEnvelope:
        key = (result.iss, result.jti)
        seen = self._seen.claim(key, result.msg, result.exp + self.policy.leeway, now)
        if seen is not None:
            if seen != result.msg:
                raise EnvelopeDenied(Reason.MALFORMED, "jti seen with another body",
                                     label=REPLAYED, basis=result.basis, envelope=result)
            if self.policy.reject_duplicates:
                raise EnvelopeDenied(Reason.MALFORMED, "duplicate delivery", label=REPLAYED,
                                     basis=result.basis, envelope=result)
            result = replace(result, duplicate=True)
        return result

    # -- decision log ----------------------------------------------------------------

    def _emit_allowed(self, result: VerifiedEnvelope, latency: float) -> None:
        if self._logger.isEnabledFor(logging.INFO):
            fields = self._event(True, ALLOWED_VALID, 200, latency, result)
            fields.update(basis=result.basis.value, revoked=result.revoked,
                          duplicate=result.duplicate or None)
            self._write(fields)

    def _emit_denied(self, denied: EnvelopeDenied, latency: float) -> None:
        if self._logger.isEnabledFor(logging.INFO):
            fields = self._event(False, denied.label, denied.status, latency,
                                 denied.envelope)
            fields["basis"] = denied.basis.value if denied.basis is not None else None
            self._write(fields)

    def _event(self, allowed: bool, reason: str, status: int, latency: float,
               claims: EnvelopeClaims | None) -> dict[str, Any]:
        fields = self._decisions.event(Decision(
            allowed, reason, status, latency, route=self.policy.audience,
            correlation_id=claims.req if claims is not None else None))
        fields["policy"] = self.policy.revocation.value
        if claims is not None:
            fields.update(user_id=claims.sub, tenant_id=claims.tid, client_id=claims.client_id,
                          jti=claims.jti, publisher=claims.iss, emitted_at=claims.iat,
                          sid_hash=token_hash(claims.sid) if claims.sid is not None else None)
        return fields

    def _write(self, fields: dict[str, Any]) -> None:
        event = {k: v for k, v in fields.items() if v is not None}
        self._logger.info(orjson.dumps(event).decode("utf-8"))
