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
- ``mark(head, at)`` publishes a *watermark* (``tessera.core.freshness``): the relay
  read the outbox at ``at`` and found nothing after ``head``, and every event up to
  ``head`` is on the bus before the watermark. Only the relay marks; the bus stamps its
  ``epoch`` (its incarnation: a Redis stream that was lost and recreated has a new one).
- ``publish`` and ``mark`` raise ``BusRewound`` when the bus lost content since this
  publisher last wrote (epoch changed, or its top is below ``after``/``head``): nothing
  was written; re-read ``last_seq`` and republish from the outbox.
- ``follow(after)`` yields every event with ``seq > after`` in order, in ``BusBatch``es;
  a batch carries the newest watermark seen with it, if any. An empty batch without a
  watermark says nothing at all: silence is not freshness. A bus whose events arrive as
  wire dicts anyway (Redis) may also offer ``follow_wire(after)``: the same batches as
  ``WireBatch``es of the wire shape (``event_to_wire``), so a verifier applies what it
  read without building an event object per event only to turn it back into a dict.
- Timing (optional, telemetry only, never trusted for a decision): a bus may carry when
  the relay was woken and read each event from the outbox (``OutboxBatch.woken_at``,
  ``read_at``) and when the bus
  added it, and say when the follower's read returned (``BusBatch.timing``, by seq, keys
  ``TIMING_KEYS``; a bus may stamp only some events, e.g. the last of each read), so one
  event's propagation can be split by stage end to end.
- If the bus no longer holds events the follower needs (trimmed, lost), ``follow`` raises
  ``BusGap``: the follower fetches the range from the source of truth. It never silently
  skips.
- A lost connection raises ``BusUnavailable``; the follower reconnects from its cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Protocol

from tessera.core.freshness import Watermark
from tessera.core.revocation import RevocationEvent

__all__ = ["TIMING_KEYS", "BusBatch", "BusGap", "BusRewound", "BusUnavailable", "EventBus",
           "OutboxBatch", "WireBatch", "event_from_wire", "event_to_wire"]


class BusGap(Exception):
    """Events after the cursor are no longer on the bus: reload a snapshot."""


class BusUnavailable(Exception):
    """The bus cannot be reached now; retry from the same cursor."""


class BusRewound(Exception):
    """The bus lost content since this publisher last wrote to it (a new epoch, or its top
    went below what the write builds on). Nothing was written: re-read ``last_seq`` and
    republish from the outbox."""


TIMING_KEYS = ("relay_woken", "relay_read", "bus_added", "received")
"""Stamps (``time.time()`` seconds) an event may carry past its ``at`` (recorded, before
the commit), in path order: a commit's notification woke the relay (for a local commit:
just after it), the relay read it from the outbox, the bus added it (the bus's clock), the
follower's read returned it."""


class BusBatch(list[RevocationEvent]):
    """Events read from the bus, in order, plus the newest ``watermark`` that came with
    them (``None``: none did) and the stamps the bus knows for them (``timing``: seq →
    ``{key: seconds}``, keys from ``TIMING_KEYS``; empty where the bus keeps none)."""

    def __init__(self, events: Iterable[RevocationEvent] = (), *,
                 watermark: Watermark | None = None,
                 timing: dict[int, dict[str, float]] | None = None) -> None:
        super().__init__(events)
        self.watermark = watermark
        self.timing: dict[int, dict[str, float]] = timing if timing is not None else {}


class WireBatch(list[dict[str, Any]]):
    """Events read from the bus in their wire shape (``event_to_wire``), in order, plus the
    newest ``watermark`` that came with them. Stamps (``TIMING_KEYS``) ride on the events
    they belong to, as a ``"timing"`` member (where ``BusBatch`` keeps them by seq)."""

    def __init__(self, events: Iterable[dict[str, Any]] = (), *,
                 watermark: Watermark | None = None) -> None:
        super().__init__(events)
        self.watermark = watermark


class OutboxBatch(list[RevocationEvent]):
    """Consecutive outbox events, plus ``after``: the seq of the outbox event right before
    the first of them (0: none before it), the stamps ``woken_at`` and ``read_at``, and
    ``complete_at`` (the watermark the batch proves). A plain list for buses that do not
    use them."""

    def __init__(self, events: Iterable[RevocationEvent], *, after: int,
                 woken_at: float | None = None, read_at: float | None = None,
                 complete_at: float | None = None) -> None:
        super().__init__(events)
        self.after = after
        self.complete_at = complete_at
        """Every event committed before this moment with a seq past ``after`` is in the
        batch (the relay's read found no more): a bus that keeps watermarks writes
        ``(last seq, complete_at)`` with the events, in the same write, so followers wake
        once for both. ``None``: the batch may be partial."""
        self.woken_at = woken_at
        """When a commit's notification woke the relay for this read (telemetry; absent
        when the relay woke by itself: a poll, a retry)."""
        self.read_at = read_at
        """When the relay read these events from the outbox (telemetry; may be absent)."""


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

    async def mark(self, head: int, at: float) -> Watermark:
        """Publish a watermark (see the module docstring); returns it, epoch stamped."""

    def follow(self, after: int, *, heartbeat: float = 1.0) -> AsyncIterator[BusBatch]:
        """Batches of events with ``seq > after``; one (maybe empty) at least every
        ``heartbeat`` s, with the latest watermark when one arrived."""

    async def aclose(self) -> None: ...
