"""Logout completion as a measured fact (DESIGN §3).

Verifiers report the seq they have applied (``POST /revocations/acks``, batched: one
cursor covers every event up to it). The registry keeps the last report of each
(client, verifier); a verifier that has not reported for ``live_seconds`` is no longer
*live*: completion stops waiting for it, and it is named as silent.

For each revocation event the identity service records when the last live verifier had
applied it (the report that made the lowest live cursor reach it, dated by the report's
arrival on this service's clock minus its ``age``: an upper bound of the apply), and
observes the seconds from the event's commit in ``tessera_logout_completion_seconds``.
``status(seq)`` is what ``tessera revoke --wait`` and the console show: "applied at 16/16
verifiers in 23 ms", or who is still behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tessera.core.clock import Clock
from tessera.core.worker import BackgroundLoop
from tessera.observability.metrics import IdentityMetrics
from tessera.store.ports import (
    Completion,
    ReportSink,
    Store,
    StoreError,
    VerifierReport,
)

__all__ = ["CompletionStatus", "LogoutCompletion", "Reach", "completions_reached",
           "fold_reports"]

_log = logging.getLogger("tessera.identity")


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


@dataclass(frozen=True, slots=True)
class Reach:
    """After one report: every live verifier had applied up to ``low``."""

    low: int
    verifiers: int
    at: float
    """When (the report's apply time)."""
    earliest: float
    """The earliest ``first_seen`` of those verifiers."""


def fold_reports(known: Sequence[VerifierReport],
                 batch: Sequence[tuple[VerifierReport, float]], *, head: int,
                 live_seconds: float) -> tuple[list[VerifierReport], list[Reach]]:
    """Apply ``batch`` ((report, when it applied its cursor)) to the ``known`` registry in
    apply order, without the store: returns the rows to record (one per verifier, its
    ``first_seen`` kept; a cursor past ``head`` is taken as ``head``: a report cannot
    pre-acknowledge events) and, after each report, how far every live verifier had got.

    Live: reported in the ``live_seconds`` before the batch's earliest arrival (one bound
    for the batch, which spans the writer's window: a verifier that fell silent during it
    is still waited for, never the other way round). O((K + B) log K) for K known
    verifiers and B reports: the lowest live cursor is kept in a heap, stale entries
    dropped as they surface."""
    ordered = sorted(batch, key=lambda pair: pair[1])
    if not ordered:
        return [], []
    since = min(report.reported_at for report, _ in ordered) - live_seconds
    registry = {(v.client_id, v.verifier_id): v for v in known}
    live = {key: v for key, v in registry.items() if v.reported_at >= since}
    lowest = [(v.cursor, key) for key, v in live.items()]
    heapq.heapify(lowest)
    earliest = min((v.first_seen for v in live.values()), default=math.inf)
    changed: dict[tuple[str, str], VerifierReport] = {}
    reached: list[Reach] = []
    for report, applied_at in ordered:
        key = (report.client_id, report.verifier_id)
        previous = registry.get(key)
        row = dataclasses.replace(
            report, cursor=min(report.cursor, head),
            first_seen=previous.first_seen if previous is not None else report.first_seen)
        registry[key] = changed[key] = live[key] = row
        heapq.heappush(lowest, (row.cursor, key))
        earliest = min(earliest, row.first_seen)
        while lowest[0][0] != live[lowest[0][1]].cursor:  # an older cursor of that one
            heapq.heappop(lowest)
        reached.append(Reach(low=lowest[0][0], verifiers=len(live), at=applied_at,
                             earliest=earliest))
    return list(changed.values()), reached


def completions_reached(reached: Sequence[Reach], events: Sequence[tuple[int, float]], *,
                        done: int) -> list[Completion]:
    """Completions for ``events`` ((seq, at), in seq order, every one after ``done``):
    each event is complete at the first reach that covers it."""
    added: list[Completion] = []
    pending = iter(events)
    nxt = next(pending, None)
    for reach in reached:
        if reach.low <= done:
            continue
        while nxt is not None and nxt[0] <= reach.low:
            added.append(Completion(seq=nxt[0], at=nxt[1], completed_at=reach.at,
                                    verifiers=reach.verifiers))
            nxt = next(pending, None)
        done = reach.low
    return added


class LogoutCompletion(BackgroundLoop):
    """Reports are written in batches (group commit): a revocation's N verifiers report
    within milliseconds of each other, and N separate write transactions would stand in
    the way of the next revocation (on SQLite, one writer at a time). A report is answered
    once buffered; the writer (``start``) waits ``window`` seconds for the rest of the
    burst, then writes them all in one short transaction, each completion dated by the
    report that made it (so batching costs no precision): the registry is read once and
    the batch folded in memory (``fold_reports``), so a batch costs a handful of
    statements, not a few per report (that held SQLite's one write lock for 100–200 ms
    per batch of ten with 64 verifiers on two cores, and every revocation waited).
    Reports buffered when the process dies are lost; verifiers report again within their
    interval. Without a running writer (the CLI, tests) a report is written at once."""

    def __init__(self, store: Store, clock: Clock, metrics: IdentityMetrics, *,
                 live_seconds: float, window: float = 0.02, max_pending: int = 10_000
                 ) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self.live_seconds = live_seconds
        self._window = window
        self._max_pending = max_pending
        self._pending: list[tuple[VerifierReport, float]] = []
        """(report, when it applied its cursor)"""
        super().__init__("logout completion writer", _log)

    async def report(self, client_id: str, verifier_id: str, service: str, cursor: int,
                     lag: float | None, *, age: float = 0.0) -> None:
        """Take a verifier's report (written now, or with the next batch). ``age``: how
        long before sending it reached ``cursor`` (it reports late, to batch), at most
        ``live_seconds`` back: a report cannot date an apply before its previous one."""
        now = self._clock.now()
        if len(self._pending) >= self._max_pending:
            del self._pending[0]  # the oldest: that verifier reports again soon
        self._pending.append((VerifierReport(
            client_id=client_id, verifier_id=verifier_id, service=service, cursor=cursor,
            reported_at=now, first_seen=now, lag=lag),
            now - min(max(age, 0.0), self.live_seconds)))
        if self._task is None:
            await self.flush()
        else:
            self.notify()

    async def flush(self) -> list[Completion]:
        """Write the buffered reports and the completions they finish, in one
        transaction. A cursor past the outbox head is taken as the head: a report cannot
        pre-acknowledge events."""
        batch, self._pending = self._pending, []
        if not batch:
            return []
        # Read and decide outside the write transaction (SQLite has one writer; every
        # statement under the lock delays the next revocation). Only the rows of the
        # verifiers in this batch are written, so a report another process recorded
        # meanwhile is never overwritten; at worst it is judged from the moment before.
        # Completions another process recorded meanwhile are kept (``record`` decides
        # serially and drops those), so each event is completed once.
        decided: list[Completion] = []
        async with self._store.unit_of_work(read_only=True) as uow:
            known = await uow.verifiers.verifiers()
            head = await uow.revocations.last_seq()
            rows, reached = fold_reports(known, batch, head=head,
                                         live_seconds=self.live_seconds)
            if reached:
                done = await uow.verifiers.completed_through()
                # the first ever: skip what predates every live verifier
                floor = done if done is not None else \
                    await uow.revocations.last_before(reached[0].earliest)
                top = max(r.low for r in reached)
                if top > floor:
                    events = await uow.revocations.since(floor, limit=min(top - floor, 1000))
                    decided = completions_reached(
                        reached, [(e.seq, e.at) for e in events
                                  if e.seq is not None and e.seq <= top], done=floor)
        if isinstance(self._store, ReportSink):
            added = await self._store.record_reports(rows, decided)
        else:
            async with self._store.unit_of_work() as uow:
                added = await uow.verifiers.record(rows, decided)
        for completion in added:
            self._metrics.logout_completion.observe(completion.seconds)
        return added

    # -- the batching writer (``core.worker.BackgroundLoop``: a failure, of any kind, is
    # logged and the writer goes on; the batch it was writing is dropped, and its
    # verifiers report again within their interval) --------------------------------------

    async def step(self) -> bool:
        if not self._pending:
            return False
        await asyncio.sleep(self._window)  # the rest of the burst
        try:
            await self.flush()
        except StoreError as exc:
            _log.warning("verifier reports not recorded (%s); they report again", exc)
        return False

    def idle_interval(self) -> float:
        return 1.0  # ``report`` notifies: this only bounds a missed wake-up

    async def aclose(self) -> None:
        await super().aclose()
        with contextlib.suppress(StoreError):
            await self.flush()

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
