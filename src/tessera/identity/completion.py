"""Logout completion as a measured fact (DESIGN §3).

Verifiers report the seq they have applied (``POST /revocations/acks``, batched: one
cursor covers every event up to it). The registry keeps the last report of each
(client, verifier); a verifier that has not reported for ``live_seconds`` is no longer
*live*: completion stops waiting for it, and it is named as silent.

For each revocation event the identity service records when the last live verifier had
applied it (the report that made the lowest live cursor reach it, on this service's
clock), and observes the seconds from the event's commit in
``tessera_logout_completion_seconds``. ``status(seq)`` is what ``tessera revoke --wait``
and the console show: "applied at 16/16 verifiers in 23 ms", or who is still behind.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tessera.core.clock import Clock
from tessera.observability.metrics import IdentityMetrics
from tessera.store.ports import Completion, Store, VerifierReport

__all__ = ["CompletionStatus", "LogoutCompletion"]


@dataclass(frozen=True, slots=True)
class CompletionStatus:
    """One revocation event as the verifiers know it, at ``now``."""

    seq: int
    now: float
    completion: Completion | None
    """Recorded once every live verifier had applied it."""
    applied: tuple[VerifierReport, ...]
    """Live verifiers whose cursor is at or past ``seq``."""
    stragglers: tuple[VerifierReport, ...]
    """Live verifiers still behind."""
    silent: tuple[VerifierReport, ...]
    """Known verifiers that stopped reporting (not live): not waited for."""

    @property
    def live(self) -> int:
        return len(self.applied) + len(self.stragglers)

    @property
    def done(self) -> bool:
        return self.completion is not None or (self.live > 0 and not self.stragglers)

    def summary(self, *, waited: float | None = None) -> str:
        """``applied at 16/16 verifiers in 23 ms`` or who is behind (``waited``: how long
        the caller has been waiting, named when there is no completion record)."""
        if self.completion is not None:
            c = self.completion
            text = f"applied at {c.verifiers}/{c.verifiers} verifiers in {_span(c.seconds)}"
        elif self.done:
            text = f"applied at {self.live}/{self.live} verifiers"
        elif self.live == 0:
            text = "no live verifier has reported: nothing to wait for"
        else:
            names = ", ".join(f"{v.verifier_id} (at {v.cursor})" for v in self.stragglers)
            after = f" after {_span(waited)}" if waited is not None else ""
            text = (f"applied at {len(self.applied)}/{self.live} verifiers{after}; "
                    f"not applied yet by {names}")
        if self.silent:
            gone = ", ".join(f"{v.verifier_id} (last report {_span(self.now - v.reported_at)}"
                             " ago)" for v in self.silent)
            text += f"; not live: {gone}"
        return text

    def to_json(self, *, waited: float | None = None) -> dict[str, object]:
        c = self.completion
        return {
            "seq": self.seq, "done": self.done,
            "completed_at": c.completed_at if c else None,
            "seconds": round(c.seconds, 6) if c else None,
            "verifiers": c.verifiers if c else self.live,
            "applied": [_verifier(v, self.now) for v in self.applied],
            "stragglers": [_verifier(v, self.now) for v in self.stragglers],
            "not_live": [_verifier(v, self.now) for v in self.silent],
            "summary": self.summary(waited=waited),
        }


def _verifier(v: VerifierReport, now: float) -> dict[str, object]:
    return {"verifier_id": v.verifier_id, "service": v.service, "client_id": v.client_id,
            "cursor": v.cursor, "last_report_seconds_ago": round(now - v.reported_at, 3)}


def _span(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


class LogoutCompletion:
    def __init__(self, store: Store, clock: Clock, metrics: IdentityMetrics, *,
                 live_seconds: float) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self.live_seconds = live_seconds

    async def report(self, client_id: str, verifier_id: str, service: str, cursor: int,
                     lag: float | None) -> list[Completion]:
        """Record a verifier's report and the completions it finishes. A cursor past the
        outbox head is taken as the head: a report cannot pre-acknowledge events."""
        now = self._clock.now()
        async with self._store.unit_of_work() as uow:
            head = await uow.revocations.last_seq()
            await uow.verifiers.report(VerifierReport(
                client_id=client_id, verifier_id=verifier_id, service=service,
                cursor=min(cursor, head), reported_at=now, first_seen=now, lag=lag))
            added = await uow.verifiers.complete(live_since=now - self.live_seconds, at=now)
        for completion in added:
            self._metrics.logout_completion.observe(completion.seconds)
        return added

    async def wait(self, seq: int, *, within: float, interval: float = 0.02
                   ) -> tuple[CompletionStatus, float]:
        """Poll ``status(seq)`` until done, or until ``within`` seconds passed
        (monotonic); returns the last status and the seconds waited."""
        started = time.monotonic()
        while True:
            status = await self.status(seq)
            waited = time.monotonic() - started
            if status.done or status.live == 0 or waited >= within:
                return status, waited
            await asyncio.sleep(interval)

    async def status(self, seq: int) -> CompletionStatus:
        now = self._clock.now()
        async with self._store.unit_of_work(read_only=True) as uow:
            known = await uow.verifiers.verifiers()
            completion = (await uow.verifiers.completions([seq])).get(seq)
        live = [v for v in known if v.reported_at >= now - self.live_seconds]
        return CompletionStatus(
            seq=seq, now=now, completion=completion,
            applied=tuple(v for v in live if v.cursor >= seq),
            stragglers=tuple(v for v in live if v.cursor < seq),
            silent=tuple(v for v in known if v.reported_at < now - self.live_seconds))
