"""Keeping ``RevocationState`` current: snapshot once, then tail an event source — and
prove, rather than assume, that the state is current (``tessera.core.freshness``).

Phases (the Promela model ``docs/model/freshness.pml`` uses the same names)::

    LOADING ──snapshot──▶ FOLLOWING ──gap, new epoch──▶ FILLING ──range fetched──▶ FOLLOWING
       ▲                                                   │
       └──────────── the source cannot give ranges ────────┘

The state is fresh only while it holds every event up to a watermark received within the
route's bound. Watermarks come from the outbox relay through the channel (Redis stream,
SSE feed, in-process bus) and from the identity service's own answers (snapshot, range).
An empty read, a reconnect, a keep-alive prove nothing: a bus nobody relays to any more
(identity service down, Redis restarted empty) leaves the state growing stale, and
routes refuse past their bound.

Failure modes, as a verifier sees them:
=====================  =============================================================
source down            retry with backoff (50 ms doubling to 2 s) from the cursor; no
                       watermarks, so lag grows and routes refuse past their bound
no relay running       the channel may answer, but nothing marks a watermark: as above
                       (identity service down; Redis back but nothing republished yet)
events trimmed / lost  ``BusGap``/``resync``/a watermark past what the channel holds:
                       FILLING — the range after the cursor from the identity service
                       (``GET /revocations?after=``, paged), then follow again
new epoch              the channel was recreated (Redis restarted empty, failover,
                       another worker's feed): FILLING before trusting it again
silent partition       (no RST/FIN) the read times out (socket timeout), then as "source
                       down"; lag grows meanwhile
never loaded           LOADING until a snapshot arrives; every route refuses
bad event              ``InvalidEvent`` is logged, the connection restarts from the cursor
far behind             a watermark shows so many events to replay (at least
                       ``reload_behind``) that a snapshot is cheaper: LOADING (a long
                       disconnect)
=====================  =============================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from tessera.core.clock import Clock
from tessera.core.freshness import Phase, Watermark
from tessera.verifier.errors import InvalidEvent, VerifierError
from tessera.verifier.revocation.state import RevocationState

__all__ = ["EventSource", "FeedBatch", "Phase", "ResyncRequired", "RevocationFollower",
           "SourceUnavailable"]

_log = logging.getLogger("tessera.verifier")
RELOAD_BEHIND = 50_000
"""Events behind (at least) from which the follower may reload the snapshot rather than
replay (``RevocationFollower.reload_behind``)."""
REPLAY_COST = 8
"""Replaying one event from the channel costs about as much as loading this many entries
of a columns snapshot (bench/scale.py measures 20× here; 8 spares the identity service,
which builds the snapshot)."""
MAX_PAGES = 10_000
"""Pages one gap fill may take (10 M events) before it is treated as a broken source."""
CLOSE_TIMEOUT = 2.0
"""Seconds ``RevocationFollower.aclose`` waits for the cancelled task to end."""


class ResyncRequired(VerifierError):
    """The source no longer has the events after our cursor (or, from ``events_after``:
    it cannot give a range): fetch them from the source of truth."""


class SourceUnavailable(VerifierError):
    """The source cannot be reached now; retry from the same cursor."""


class FeedBatch(list[Mapping[str, Any]]):
    """Events (wire shape) in order, plus the newest watermark that came with them."""

    def __init__(self, events: Iterable[Mapping[str, Any]] = (), *,
                 watermark: Watermark | None = None) -> None:
        super().__init__(events)
        self.watermark = watermark


class EventSource(Protocol):
    async def snapshot(self) -> Mapping[str, Any]:
        """``{"seq": int, "events": [...], "watermark": {...}}`` (or the same as columns,
        ``tessera.core.revocation_snapshot``): live state as of ``seq``. A source may say
        ``has_snapshot = True``: its snapshot is the source of truth's, so the follower
        may reload it rather than replay a long way."""

    async def events_after(self, after: int) -> Mapping[str, Any]:
        """One page of the source of truth: ``{"events": [...], "next": int | None,
        "watermark": {...}}``. Raises ``ResyncRequired`` if this source has no ranges
        (the follower reloads a snapshot instead), ``SourceUnavailable``."""

    def follow(self, after: int) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
        """Batches (``FeedBatch``) of events with ``seq > after``. Raises
        ``ResyncRequired`` or ``SourceUnavailable``."""

    async def aclose(self) -> None: ...


class RevocationFollower:
    def __init__(self, state: RevocationState, source: EventSource, *, clock: Clock,
                 min_backoff: float = 0.05, max_backoff: float = 2.0,
                 reload_behind: int = RELOAD_BEHIND,
                 on_applied: Callable[[Mapping[str, Any], float], None] | None = None,
                 on_progress: Callable[[], None] | None = None) -> None:
        self.state = state
        self.on_applied = on_applied
        """Called with each event applied and the time (propagation metrics)."""
        self.on_progress = on_progress
        """Called after each batch, fill or snapshot (the ack reporter listens)."""
        self.source = source
        self._clock = clock
        self._min_backoff = min_backoff
        self.max_backoff = max_backoff
        """Longest wait between two reconnection attempts (seconds)."""
        self._backoff = min_backoff
        self.reload_behind = reload_behind
        """Reload the snapshot instead of replaying the channel when a watermark shows the
        state at least this many events behind and replaying them would cost more than
        loading a snapshot (``REPLAY_COST``): after a long disconnect, loading the live
        state is cheaper than replaying every event since (docs/scale.md)."""
        self.reloads = 0
        """Snapshots reloaded because the state was far behind (for metrics)."""
        self._reload_armed = True
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self.phase = Phase.LOADING
        self.epoch: str | None = None
        """Epoch of the channel being followed (``None``: adopt the next one seen)."""
        self.reconnects = 0
        """Connections re-established after a failure (for metrics)."""
        self.resyncs = 0
        """Gaps recovered: ranges fetched or snapshots reloaded because the channel lost
        our place (for metrics)."""
        self.epoch_changes = 0
        """Times the channel turned out to be a new incarnation (for metrics)."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def synced(self) -> None:
        """Wait until the snapshot is loaded and the channel has answered."""
        await self._synced.wait()

    async def run(self) -> None:
        while True:
            try:
                if self.phase is Phase.LOADING:
                    await self._load()
                if self.phase is Phase.FILLING:
                    await self._fill()
                await self._follow()
                if self.phase is Phase.FOLLOWING:
                    raise SourceUnavailable("the feed ended")
                continue  # the epoch changed, or the state is far behind
            except ResyncRequired as exc:
                self.resyncs += 1
                self.phase = Phase.LOADING if self.phase is Phase.FILLING else Phase.FILLING
                _log.warning("revocation feed lost our place (%s): %s", exc,
                             self.phase.value)
                continue
            except (SourceUnavailable, InvalidEvent) as exc:
                _log.warning("revocation feed interrupted (%s); retrying in %.2fs", exc,
                             self._backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a follower must never die silently
                _log.exception("revocation follower error; retrying", exc_info=exc)
            self.reconnects += 1
            await asyncio.sleep(self._backoff)
            self._backoff = min(self.max_backoff, self._backoff * 2)

    async def _load(self) -> None:
        self.state.load_snapshot(await self.source.snapshot(), now=self._clock.now())
        self.epoch = None
        self.phase = Phase.FOLLOWING
        self._progress()

    async def _fill(self) -> None:
        """Fetch every event after the cursor from the source of truth, page by page."""
        after = self.state.cursor
        for _ in range(MAX_PAGES):
            page = await self.source.events_after(after)
            now = self._clock.now()
            events, following = page.get("events"), page.get("next")
            if not isinstance(events, list):
                raise InvalidEvent("a page's events must be a list")
            self._apply(events, now)
            if page.get("watermark") is not None:
                self.state.observe_watermark(page["watermark"], now=now)
            if following is None:
                break
            if not isinstance(following, int) or isinstance(following, bool) \
                    or following <= after:
                raise InvalidEvent("a page's next must be past its after")
            after = following
        else:
            raise SourceUnavailable("the gap fill does not end")
        self.phase = Phase.FOLLOWING
        self._progress()

    async def _follow(self) -> None:
        """Apply batches until the channel turns out to be a new epoch (→ FILLING)."""
        feed = self.source.follow(self.state.cursor)
        try:
            async for batch in feed:
                now = self._clock.now()
                watermark = getattr(batch, "watermark", None)
                if isinstance(watermark, Watermark) and self._far_behind(watermark):
                    _log.warning("revocation state %d events behind: reloading the snapshot "
                                 "instead of replaying them", watermark.head - self.state.cursor)
                    self.reloads += 1
                    self._reload_armed = False  # until a batch of the channel is applied
                    self.phase = Phase.LOADING
                    return
                self._apply(batch, now)
                self._reload_armed = True
                if isinstance(watermark, Watermark):
                    if self.epoch is not None and watermark.epoch != self.epoch:
                        _log.warning("revocation channel epoch changed (%s → %s): checking "
                                     "our position with the identity service", self.epoch,
                                     watermark.epoch)
                        self.epoch_changes += 1
                        self.epoch = watermark.epoch
                        self.phase = Phase.FILLING
                        return
                    self.epoch = watermark.epoch
                    self.state.observe_watermark(watermark, now=now)
                self._synced.set()
                self._backoff = self._min_backoff
                self._progress()
        finally:
            close = getattr(feed, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    def _far_behind(self, watermark: Watermark) -> bool:
        """Never twice in a row (a snapshot older than the channel's head would loop), and
        only from a source with a snapshot of its own."""
        if not self._reload_armed or not getattr(self.source, "has_snapshot", False):
            return False
        behind = watermark.head - self.state.cursor
        # the snapshot holds about the state plus what is behind; replaying one event
        # costs about as much as loading REPLAY_COST snapshot entries
        return behind >= self.reload_behind \
            and behind * REPLAY_COST > len(self.state) + behind

    def _apply(self, events: Iterable[Mapping[str, Any]], now: float) -> None:
        for event in events:  # pruned once per batch, not per event (catch-up speed)
            if self.state.apply(event) and self.on_applied:
                self.on_applied(event, now)
        self.state.prune(now)

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress()

    async def aclose(self) -> None:
        """Stop following and close the source. The task gets ``CLOSE_TIMEOUT`` seconds to
        end after its cancellation (a read in a client library that swallows the
        cancellation must not hang the caller's shutdown)."""
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)
            if done:
                with contextlib.suppress(asyncio.CancelledError):
                    self._task.result()  # as awaiting it did: anything else is raised
            else:
                _log.warning("revocation follower did not stop in %.0fs after its "
                             "cancellation; going on", CLOSE_TIMEOUT)
            self._task = None
        await self.source.aclose()
