"""The identity service's copy of the revocation state verifiers keep (issue 15 item 3):
introspecting a JWT access token is a signature check plus O(1) lookups, with no database
round trip, whenever that copy is provably current.

The state is the verifier SDK's own ``RevocationState`` (one rule, one place: the same
class decides for verifiers and for introspection). It is fed like a verifier's: a
snapshot of the live events read from the store, then this process's in-process bus,
which its outbox relay fills with every committed event (from every process: the relay
reads the shared outbox), watermarks included.

The copy answers only when all three hold, else the caller checks the store as before:

- a snapshot was loaded (never-loaded is never fresh);
- it holds every event up to a relay watermark at most ``max_lag`` seconds old
  (``tessera.core.freshness``): a commit of another process (the CLI, another worker)
  reaches it within the relay's wake-up (LISTEN/NOTIFY on PostgreSQL) or poll interval;
- read-your-writes: after an outbox commit in *this* process, until a watermark taken
  after that commit has been applied, so a revocation answered here is never followed by
  an ``active: true`` from the same process.

Every state change that can end an access token commits a revocation event with it
(``application.lifecycle``: token, session, family, user — disabled or deleted users too —,
tenant, client, session version), so the copy refuses what the store path refuses.
"""

from __future__ import annotations

import asyncio
import logging

from tessera.bus import BusGap, InProcessBus, event_to_wire
from tessera.core.clock import Clock
from tessera.core.freshness import Watermark
from tessera.protocol.rfc9068.token import VerifiedToken
from tessera.protocol.rfc9068.validator import check_revocation
from tessera.store.ports import Store, StoreError
from tessera.verifier.revocation import RevocationState

__all__ = ["RevocationMirror"]

_log = logging.getLogger("tessera.identity")


class RevocationMirror:
    """``AccessTokenState``'s ``RevocationView``: ``usable(now)`` then ``check(token)``."""

    def __init__(self, store: Store, bus: InProcessBus, clock: Clock, *, max_lag: float,
                 retry_delay: float = 0.5) -> None:
        self._store = store
        self._bus = bus
        self._clock = clock
        self._max_lag = max_lag
        self._retry = retry_delay
        self.state = RevocationState()
        self._must_see = 0.0
        """A watermark taken after this time must be held (this process's last outbox
        commit happened before it): strictly after, so a clock that did not move between
        the commit and an older watermark never passes for one."""
        self.answered = 0
        """Checks answered from memory (for benchmarks and tests)."""

    def committed(self) -> None:
        """This process committed outbox events (``Store.on_outbox_commit``)."""
        self._must_see = self._clock.now()

    def usable(self, now: float) -> bool:
        if self._max_lag <= 0 or not self.state.loaded:
            return False
        fresh_at = self.state.fresh_at
        return (fresh_at is not None and fresh_at > self._must_see
                and now - fresh_at <= self._max_lag)

    def check(self, token: VerifiedToken) -> None:
        """Raise ``TokenRejected`` if the state revokes the token: the one rule
        (``validator.check_revocation``) over the verifiers' own state."""
        self.answered += 1
        check_revocation(token, self.state)

    async def load(self) -> None:
        """Replace the state with a snapshot of the live events in the store."""
        at = self._clock.now()  # before the read: what committed before it, it holds
        async with self._store.unit_of_work(read_only=True) as uow:
            seq, events = await uow.revocations.live(at)
        self.state.load_snapshot({"seq": seq, "events": [event_to_wire(e) for e in events],
                                  "watermark": Watermark(seq, at).to_wire()},
                                 now=self._clock.now())

    async def run(self) -> None:
        """Load, then follow the bus; reload after a gap or a store failure. Runs until
        cancelled (the app's lifespan)."""
        while True:
            try:
                await self.load()
                async for batch in self._bus.follow(self.state.cursor):
                    now = self._clock.now()
                    for event in batch:
                        self.state.apply(event_to_wire(event))
                    if batch.watermark is not None:
                        self.state.observe_watermark(batch.watermark, now=now)
                    self.state.prune(now)
            except BusGap:
                continue
            except StoreError as exc:
                _log.warning("revocation mirror paused (introspection reads the store): %s",
                             exc)
                await asyncio.sleep(self._retry)
            except Exception:  # a bad event must not end it: reload (it goes stale meanwhile)
                _log.exception("revocation mirror failed; reloading")
                await asyncio.sleep(self._retry)
