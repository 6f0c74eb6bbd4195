"""The outbox relay: committed revocation rows → one bus, in order, at least once; and the
watermarks that let followers prove they are current.

It resumes from the bus's own ``last_seq``, so a relay that crashed between commit and
publish (or a bus that was down) catches up when it runs again: events are delayed, never
dropped. Publishing is idempotent by seq, so several relays (one per worker process) may
feed the same bus. One relay per bus: an outage of one bus never holds up another.
This process's own commits are handed over by the store (``Store.hand_off_outbox``:
``committing`` stamps the moment before each commit, ``committed`` passes its events)
and published without reading them back, when they continue what the bus has; anything
else (a gap: another process's commit in between) is read from the outbox. A handed
commit wakes it at once (and stamps when: with the time the batch was read,
``OutboxBatch`` carries it to buses that keep such stamps); a pass that published the
commits that woke it, and nothing else, leaves no wake behind. ``notify()`` is for the
rest: commits made by other processes (the CLI, other workers) wake it where the store
can tell: PostgreSQL LISTEN/NOTIFY (``SqlStore.listen_outbox``), on SQLite a watch of the
database's change counter (``SqlStore.watch_outbox``); while either works the relay only
wakes by itself for its heartbeat (``event_driven``), and a short poll is the safety net
when it does not (the listening connection lost, a failing read).

A bus that lost content is noticed three ways, and each leads to republishing from the
outbox: the bus refuses a write (``BusRewound``: a new epoch, or its top below what the
write builds on), or its ``last_seq`` is found below the relay's cursor on an idle poll.

Failures (the relay is a ``core.worker.BackgroundLoop``; its ``step`` handles them all):
after any failed pass the relay re-reads the bus's position. A refused write
(``BusRewound``) is retried at once; an unavailable bus or store (``BusUnavailable``,
``StoreError``) pauses the relay for ``retry_delay``. Anything else a pass raises (a bug,
a driver error no adapter maps) is logged once with its type and stack and retried after
``retry_delay``, doubled after each such failure in a row up to ``MAX_BACKOFF`` times it,
back to ``retry_delay`` after a pass that succeeds: a relay that stopped would hold every
later revocation back until a restart, one that retried at once would spin a core on a
persistent bug. These waits are sleeps that ``notify()`` does not cut short.
``on_error(reason)`` counts each failure (``tessera_outbox_relay_errors_total``).
Cancellation (``aclose``) still ends the relay at once, whatever it is waiting for.

Watermarks (``tessera.core.freshness``): when a read of the outbox returns less than a
full batch, everything committed before that read (``at``, taken before it) is in it or
already on the bus, so the relay marks ``(head=last seq, at)`` — with the batch itself
(``OutboxBatch.complete_at``: one write, one wake-up of every follower), else, when a read
finds nothing, every ``heartbeat`` seconds. A handed-over commit proves the same up to
the moment before it (every commit that ended earlier has a lower seq: outbox writers
are serialised until they commit, and the ones before it are on the bus already). No
relay, no watermark: followers go stale instead of trusting a silent bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from tessera.bus.ports import BusRewound, BusUnavailable, EventBus, OutboxBatch
from tessera.core.clock import Clock, SystemClock
from tessera.core.revocation import RevocationEvent
from tessera.core.worker import BackgroundLoop
from tessera.store.ports import Store, StoreError

__all__ = ["MAX_BACKOFF", "OutboxRelay"]

_log = logging.getLogger("tessera.bus")

MAX_BACKOFF = 10
"""After unexpected failures in a row, the relay waits at most this many ``retry_delay``."""

# reasons passed to ``on_error`` (the ``reason`` label of tessera_outbox_relay_errors_total)
REWOUND = "bus_rewound"
BUS_UNAVAILABLE = "bus_unavailable"
STORE_ERROR = "store_error"
UNEXPECTED = "unexpected"


class OutboxRelay(BackgroundLoop):
    def __init__(self, store: Store, bus: EventBus, *, poll_interval: float = 0.1,
                 batch: int = 500, retry_delay: float = 0.5, heartbeat: float = 1.0,
                 clock: Clock | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        super().__init__("outbox relay", _log)
        self._store = store
        self._bus = bus
        self._poll = poll_interval
        self._batch = batch
        self._retry = retry_delay
        self._heartbeat = heartbeat
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._on_error = on_error
        self._failures = 0
        """Unexpected failures in a row (the backoff's exponent)."""
        self._cursor: int | None = None
        self._marked: tuple[int, float] | None = None
        """(head, at) of the last watermark this relay wrote."""
        self._marked_apart: float | None = None
        """``at`` of the last watermark written on its own (``EventBus.mark``)."""
        self._woken_at: float | None = None
        """When a commit (handed over, or ``notify``) first woke the relay since its last
        read (telemetry)."""
        self._outside_wake = False
        """``notify`` was called since the last pass began: not only this process's
        handed commits woke the relay."""
        self.event_driven = False
        """Every outbox commit, of any process, calls ``notify``: no need to poll."""
        self.drained = False
        """The last read returned everything committed before it (less than a batch)."""
        self._handed: list[tuple[Sequence[RevocationEvent], float]] = []
        """This process's commits not yet published: (events, stamp before the commit)."""

    def notify(self) -> None:
        """Wake the relay for anything that may have put events in the outbox: another
        process's commit (the outbox watch), a commit not handed over."""
        self._outside_wake = True
        self._wake_up()

    def _wake_up(self) -> None:
        if self._woken_at is None:  # after a local commit: stamps the commit's end
            self._woken_at = self._clock.now()
        super().notify()

    # -- the store's hand-off (``Store.hand_off_outbox``) ---------------------------------

    def committing(self) -> float:
        return self._clock.now()

    def committed(self, events: Sequence[RevocationEvent], before: float) -> None:
        """A commit of this process, handed over: published without reading it back when
        it continues what the bus has (else the outbox read catches up, as for another
        process's commit)."""
        if len(self._handed) < self._batch:
            self._handed.append((events, before))
            self._wake_up()
        else:
            self.notify()  # not kept: only the outbox read will find it

    def _take_handed(self, cursor: int) -> tuple[list[RevocationEvent], float | None, bool]:
        """The handed events that continue ``cursor`` without a gap; the stamp of the
        last commit taken (``complete_at``: every commit that ended before it has a seq
        at or below that commit's); and whether handed events were left for the outbox
        read (a gap: another process's commit, a burnt seq)."""
        handed, self._handed = self._handed, []
        taken: list[RevocationEvent] = []
        complete_at: float | None = None
        last = cursor
        for i, (events, before) in enumerate(handed):
            fresh = [e for e in events if e.seq is not None and e.seq > last]
            if not fresh:
                continue
            if fresh[0].seq != last + 1 or len(fresh) != len(events):
                return taken, complete_at, True
            taken += fresh
            last = fresh[-1].seq or last
            complete_at = before
            if len(taken) >= self._batch and i + 1 < len(handed):
                return taken, complete_at, True
        return taken, complete_at, False

    def set_event_driven(self, on: bool) -> None:
        self.event_driven = on
        self._wake.set()  # re-arm the wait with the new interval

    def idle_interval(self) -> float:
        return self._heartbeat if self.event_driven else self._poll

    async def step(self) -> bool:
        """One pass; True: run again at once (events moved, or a failure waited out).
        Waits after failures are plain sleeps, not cut short by ``notify``: a burst of
        commits must not turn a failing bus or a bug into a busy loop."""
        try:
            moved = await self.relay_once()
        except BusRewound as exc:
            _log.warning("bus lost content (%s); republishing from the outbox", exc)
            self._failed(REWOUND)
            return True
        except (StoreError, BusUnavailable) as exc:
            _log.warning("outbox relay paused: %s", exc)
            self._failed(STORE_ERROR if isinstance(exc, StoreError) else BUS_UNAVAILABLE)
            await asyncio.sleep(self._retry)
            return True
        except Exception as exc:  # not BaseException: cancellation must still end the task
            self._failures += 1
            delay = self._retry * min(2 ** (self._failures - 1), MAX_BACKOFF)
            _log.error("outbox relay pass failed (%s, %d in a row); retrying in %.3g s",
                       type(exc).__name__, self._failures, delay, exc_info=True,
                       extra={"retry_in": delay})
            self._failed(UNEXPECTED)
            await asyncio.sleep(delay)
            return True
        self._failures = 0
        return moved > 0 and not self.drained  # a later commit notifies: no re-read

    def _failed(self, reason: str) -> None:
        self._cursor = None  # re-read the bus's position on the next pass
        if self._on_error is not None:
            self._on_error(reason)

    async def relay_once(self) -> int:
        """Publish the next batch the bus lacks; returns how many events were moved. When
        there is none, check the bus still holds what it had and mark a watermark when
        one is due. Raises ``BusRewound`` (reset, then call again), ``BusUnavailable``
        and ``StoreError``."""
        outside, self._outside_wake = self._outside_wake, False
        if self._cursor is None:
            self._cursor = await self._bus.last_seq()
        at = self._clock.now()  # before the read: what committed before it, it sees
        woken_at, self._woken_at = self._woken_at, None
        events, complete_at, left = self._take_handed(self._cursor)
        # handed events alone: drained unless gaps were left, or another process's commit
        # woke the relay too (it may come after them: the next pass reads the outbox)
        drained = not left and not outside
        if not events:  # none handed over that continues the bus: read the outbox
            async with self._store.unit_of_work(read_only=True) as uow:
                events = await uow.revocations.since(self._cursor, limit=self._batch)
            drained = len(events) < self._batch
            complete_at = at if drained else None
        if events:
            await self._bus.publish(OutboxBatch(
                events, after=self._cursor, woken_at=woken_at, read_at=self._clock.now(),
                complete_at=complete_at))
            head = events[-1].seq
            assert head is not None, "outbox events carry their seq"
            self._cursor = head
            # Commits handed over while this pass read the outbox went out with it: drop
            # them, so the pass counts as drained, and their wake-ups — the stamp (it
            # must not date the next batch) and, when nothing else woke the relay, the
            # wake itself: a second read at once would be in flight again when the next
            # commit comes, and carry that one too, each revocation read back instead of
            # handed over.
            self._handed = [(handed, before) for handed, before in self._handed
                            if any(e.seq is not None and e.seq > head for e in handed)]
            if not self._handed:
                self._woken_at = None
                if not self._outside_wake:
                    self._wake.clear()
            if complete_at is not None:
                self._marked = (head, complete_at)
                if self._marked_apart is None \
                        or complete_at - self._marked_apart >= self._heartbeat:
                    # also on its own once per heartbeat, as an idle relay does: a
                    # follower of an older release reads no watermark on an entry, and
                    # under steady traffic the relay is never idle
                    await self._bus.mark(head, complete_at)
                    self._marked_apart = complete_at
            self.drained = drained and not self._handed
            return len(events)
        self.drained = True
        # Idle: the bus must still hold what we published (it may have restarted empty).
        top = await self._bus.last_seq()
        if top < self._cursor:
            _log.warning("bus position went back from %d to %d (restarted empty?); "
                         "republishing from the outbox", self._cursor, top)
            self._cursor = top
            return await self.relay_once()
        if self._mark_due(at):
            await self._bus.mark(self._cursor, at)
            self._marked = (self._cursor, at)
            self._marked_apart = at
        return 0

    def _mark_due(self, at: float) -> bool:
        if self._marked is None:
            return True
        head, last = self._marked
        return head != self._cursor or at - last >= self._heartbeat
