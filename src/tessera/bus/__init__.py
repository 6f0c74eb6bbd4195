"""The event bus: revocation events pushed from the outbox to every verifier.

``EventBus`` is the port; ``InProcessBus`` (embedded default) and ``RedisStreamsBus``
(production) adapt it; ``OutboxRelay`` (``tessera.bus.relay``, imported by path: it reads
the store port, which a verifier never loads) moves committed outbox rows onto buses. Events
carry the outbox sequence number, so publishing is idempotent and following resumes
from a cursor; the relay's watermarks (``mark``) are what lets a follower prove it is
current (``tessera.core.freshness``).
"""

from tessera.bus.inprocess import InProcessBus
from tessera.bus.ports import (
    BusBatch,
    BusGap,
    BusRewound,
    BusUnavailable,
    EventBus,
    OutboxBatch,
    event_from_wire,
    event_to_wire,
)

__all__ = ["BusBatch", "BusGap", "BusRewound", "BusUnavailable", "EventBus", "InProcessBus",
           "OutboxBatch", "event_from_wire", "event_to_wire"]
