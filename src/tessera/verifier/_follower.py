"""Keeping ``RevocationState`` current: snapshot once, then tail an event source.

The follower survives everything a network does: a dropped connection or an outage of the
source is retried with backoff *from the state's own cursor* (nothing is skipped, nothing
applied twice); a source that no longer holds the events after the cursor raises
``ResyncRequired`` and the follower reloads a snapshot. While it is cut off, the state's
``lag`` grows, and routes with a staleness bound fail closed (``stale_state``).

Failure modes, as a verifier sees them:
====================  ==============================================================
source down           retry with backoff (50 ms doubling to 2 s); lag grows; strict
                      routes deny with 503 after ``max_staleness``; others keep
                      serving from the last known state
connection dropped    reconnect and resume from the cursor; no event lost
silent partition      (no RST/FIN) the Redis read times out (socket timeout 5 s), then
                      as "connection dropped"; lag grows meanwhile
events trimmed        ``ResyncRequired`` → reload the snapshot, then resume
bus restarted empty   the relay sees the bus position go back and republishes from the
                      outbox; an entry whose predecessor is past our cursor (events lost
                      for good) → ``ResyncRequired`` → snapshot
bad event             ``InvalidEvent`` is logged, the connection restarts from the cursor
====================  ==============================================================

The staleness bound measures this verifier's contact with its source, not the source's
with the outbox: while no relay runs (identity service down, a revocation committed by
the CLI) or right after Redis came back empty and before the relay republished, the bus
answers "nothing new" and even strict routes accept. Events are delayed, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from tessera.core.clock import Clock
from tessera.verifier._errors import InvalidEvent, VerifierError
from tessera.verifier._revocation import RevocationState

__all__ = ["EventSource", "ResyncRequired", "RevocationFollower", "SourceUnavailable"]

_log = logging.getLogger("tessera.verifier")


class ResyncRequired(VerifierError):
    """The source no longer has the events after our cursor: reload a snapshot."""


class SourceUnavailable(VerifierError):
    """The source cannot be reached now; retry from the same cursor."""


class EventSource(Protocol):
    async def snapshot(self) -> Mapping[str, Any]:
        """``{"seq": int, "events": [event, ...]}``: live state as of ``seq``."""

    def follow(self, after: int) -> AsyncIterator[list[Mapping[str, Any]]]:
        """Batches of events with ``seq > after``; ``[]`` is a heartbeat. Raises
        ``ResyncRequired`` or ``SourceUnavailable``."""

    async def aclose(self) -> None: ...


class RevocationFollower:
    def __init__(self, state: RevocationState, source: EventSource, *, clock: Clock,
                 min_backoff: float = 0.05, max_backoff: float = 2.0,
                 on_applied: Callable[[Mapping[str, Any], float], None] | None = None
                 ) -> None:
        self.state = state
        self._on_applied = on_applied
        self.source = source
        self._clock = clock
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self.reconnects = 0
        """Connections re-established after a failure (for metrics)."""
        self.resyncs = 0
        """Snapshots reloaded because the source lost our place (for metrics)."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def synced(self) -> None:
        """Wait until the snapshot is loaded and the source has been heard from."""
        await self._synced.wait()

    async def run(self) -> None:
        need_snapshot = True
        backoff = self._min_backoff
        while True:
            try:
                if need_snapshot:
                    self.state.load_snapshot(await self.source.snapshot(),
                                             now=self._clock.now())
                    need_snapshot = False
                async for batch in self.source.follow(self.state.cursor):
                    now = self._clock.now()
                    for event in batch:
                        if self.state.apply(event, now=now) and self._on_applied:
                            self._on_applied(event, now)
                    self.state.heartbeat(now)
                    self._synced.set()
                    backoff = self._min_backoff
            except ResyncRequired:
                self.resyncs += 1
                need_snapshot = True
                continue
            except (SourceUnavailable, InvalidEvent) as exc:
                _log.warning("revocation feed interrupted (%s); retrying in %.2fs", exc,
                             backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a follower must never die silently
                _log.exception("revocation follower error; retrying", exc_info=exc)
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(self._max_backoff, backoff * 2)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.source.aclose()
