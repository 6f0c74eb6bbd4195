"""Proven freshness: what lets a follower of the revocation events call itself current.

A follower (a verifier's revocation state) is *fresh* at time ``now`` within ``bound``
only if it holds every event committed up to a **watermark** it received from the source
of truth, and that watermark is at most ``bound`` seconds old::

    Watermark(head, at, epoch): every event committed before ``at`` has seq <= head

Hearing the bus proves nothing: an empty read from a Redis that came back empty, or
from a stream no relay writes to any more, is silence, not a heartbeat. Only the outbox
relay (or the identity service answering directly: snapshot, ``/revocations?after=``)
makes watermarks, after reading the outbox; a watermark counts once the follower's cursor
has reached its ``head``. Watermarks that arrive before the events they cover wait
(``pending``) until the cursor catches up.

``epoch`` names the incarnation of the channel that carried the watermark (a Redis
stream, one identity process's in-process bus). A different epoch means the channel was
recreated — Redis restarted empty, a failover, another worker's feed — so the follower
confirms its position with the source of truth before trusting the channel again. Direct
answers of the source of truth carry no epoch.

Time: ``at`` is the source's clock, taken *before* its outbox read, and is never taken to
be later than the moment the follower received it (``min(at, now)``), so a source clock
ahead of ours cannot stretch the bound. Clock skew the other way only makes a follower
stale sooner (fail closed); hosts keep their clocks in sync as they must for ``exp``.

States, as the model (``docs/model/freshness.pml``) names them: a follower is ``LOADING``
(no snapshot yet: never fresh), ``FOLLOWING`` the channel or ``FILLING`` a gap from the
source of truth; independently it is ``FRESH`` or ``STALE`` by the rule above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Freshness", "Phase", "Watermark", "WatermarkError"]

MAX_PENDING = 64
"""Watermarks kept while waiting for the cursor to reach their head. Dropping the oldest
only delays freshness (a newer one covers more), never grants it."""


class WatermarkError(ValueError):
    """A watermark does not have the documented shape."""


class Phase(StrEnum):
    """What a follower is doing (same names in the Promela model)."""

    LOADING = "loading"
    """No snapshot loaded yet: every route refuses."""
    FOLLOWING = "following"
    """Applying events from the channel in order."""
    FILLING = "filling"
    """Fetching a missing range (a gap, a new epoch) from the source of truth."""


@dataclass(frozen=True, slots=True)
class Watermark:
    head: int
    """Outbox head: every event with ``seq <= head`` is committed (and, on a channel, was
    sent before this watermark)."""
    at: float
    """Source time of the outbox read: every event committed before it has
    ``seq <= head``."""
    epoch: str | None = None
    """The channel's incarnation; ``None`` for a direct answer of the source of truth."""

    def to_wire(self) -> dict[str, Any]:
        return {"head": self.head, "at": self.at, "epoch": self.epoch}

    @classmethod
    def from_wire(cls, wire: object) -> Watermark:
        """Parse ``{"head": int, "at": number, "epoch": str | null}``."""
        if not isinstance(wire, Mapping):
            raise WatermarkError("a watermark is an object")
        head, at, epoch = wire.get("head"), wire.get("at"), wire.get("epoch")
        if not isinstance(head, int) or isinstance(head, bool) or head < 0:
            raise WatermarkError("watermark head must be a non-negative integer")
        if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
            raise WatermarkError("watermark at must be a finite number")
        if epoch is not None and (not isinstance(epoch, str) or not 0 < len(epoch) <= 64):
            raise WatermarkError("watermark epoch must be a short string or null")
        return cls(head, float(at), epoch)


class Freshness:
    """One follower's proof of freshness: the newest watermark whose head it holds.

    Pure and synchronous; the owner calls ``observe`` for each watermark received and
    ``advanced`` whenever its cursor moves.
    """

    __slots__ = ("_pending", "fresh_at")

    def __init__(self) -> None:
        self.fresh_at: float | None = None
        """``at`` of the newest watermark held (``None``: never proven fresh)."""
        self._pending: list[Watermark] = []

    def observe(self, watermark: Watermark, *, cursor: int, now: float) -> None:
        """A watermark received at ``now`` by a follower at ``cursor``."""
        at = min(watermark.at, now)
        if watermark.head <= cursor:
            self._prove(at)
            return
        self._pending.append(Watermark(watermark.head, at, watermark.epoch))
        if len(self._pending) > MAX_PENDING:
            del self._pending[0]

    def advanced(self, cursor: int) -> None:
        """The follower now holds every event up to ``cursor``."""
        if not self._pending:
            return
        keep = []
        for watermark in self._pending:
            if watermark.head <= cursor:
                self._prove(watermark.at)
            else:
                keep.append(watermark)
        self._pending = keep

    def _prove(self, at: float) -> None:
        if self.fresh_at is None or at > self.fresh_at:
            self.fresh_at = at

    def lag(self, now: float) -> float:
        """Seconds since the newest held watermark (``inf`` if none)."""
        return math.inf if self.fresh_at is None else max(0.0, now - self.fresh_at)

    @property
    def pending(self) -> int:
        return len(self._pending)
