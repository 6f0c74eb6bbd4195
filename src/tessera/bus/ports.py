"""The bus port and the wire shape of an event.

Guarantees every adapter gives:
- ``publish`` takes consecutive outbox events (as ``RevocationLog.since`` returns them)
  in sequence order and is idempotent by ``seq``: publishing an event the bus already
  holds is a no-op, so relays may repeat themselves after a crash. The relay passes an
  ``OutboxBatch``, which also names the seq of the outbox event just before the first
  one (``after``); a bus that keeps it lets followers detect lost events exactly (seqs
  may skip, so ``seq - 1`` would not do).
- A bus may lose its content (Redis restarted without persistence): ``last_seq`` then
  goes backwards, and the relay republishes from there.
- ``follow(after)`` yields every event with ``seq > after`` in order, in batches; an
  empty batch is a heartbeat ("nothing new, and I am connected").
- If the bus no longer holds events the follower needs (trimmed), ``follow`` raises
  ``BusGap``: the follower must reload a snapshot. It never silently skips.
- A lost connection raises ``BusUnavailable``; the follower reconnects from its cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Protocol

from tessera.core.revocation import RevocationEvent

__all__ = ["BusGap", "BusUnavailable", "EventBus", "OutboxBatch", "event_from_wire",
           "event_to_wire"]


class BusGap(Exception):
    """Events after the cursor are no longer on the bus: reload a snapshot."""


class BusUnavailable(Exception):
    """The bus cannot be reached now; retry from the same cursor."""


class OutboxBatch(list[RevocationEvent]):
    """Consecutive outbox events, plus ``after``: the seq of the outbox event right before
    the first of them (0: none before it). A plain list for buses that do not use it."""

    def __init__(self, events: Iterable[RevocationEvent], *, after: int) -> None:
        super().__init__(events)
        self.after = after


def event_to_wire(event: RevocationEvent) -> dict[str, Any]:
    return {"seq": event.seq, "kind": event.kind, "key": event.key, "at": event.at,
            "expires_at": event.expires_at, "data": event.data}


def event_from_wire(wire: dict[str, Any]) -> RevocationEvent:
    return RevocationEvent(kind=str(wire["kind"]), key=str(wire["key"]), at=float(wire["at"]),
                           expires_at=float(wire["expires_at"]), data=dict(wire["data"]),
                           seq=int(wire["seq"]))


class EventBus(Protocol):
    async def publish(self, events: Sequence[RevocationEvent]) -> int:
        """Publish in order; returns how many were new to the bus."""

    async def last_seq(self) -> int:
        """Highest sequence number on the bus (0 when empty)."""

    def follow(self, after: int, *, heartbeat: float = 1.0
               ) -> AsyncIterator[list[RevocationEvent]]:
        """Batches of events with ``seq > after``; ``[]`` at least every ``heartbeat`` s."""

    async def aclose(self) -> None: ...
