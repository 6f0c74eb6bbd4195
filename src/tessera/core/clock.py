"""Time as a parameter: everything below the composition root takes a ``Clock``."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FixedClock", "SystemClock"]


class Clock(Protocol):
    """Source of the current time in seconds since the epoch (float)."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock. Only composition roots construct it."""

    def now(self) -> float:
        return time.time()


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
