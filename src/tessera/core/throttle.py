"""Failure throttling: how many failed attempts a key (user or client, plus address) may
make in a sliding window before it is refused (DESIGN §9: rate limits on login and token
endpoints). Per process and in memory: it slows guessing, it is not a quota."""

from __future__ import annotations

from collections import deque

from tessera.core.clock import Clock

__all__ = ["FailureWindow"]


class FailureWindow:
    def __init__(self, limit: int, clock: Clock, *, window: float = 60.0,
                 max_keys: int = 100_000) -> None:
        self._limit = limit
        self._clock = clock
        self._window = window
        self._max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, key: str) -> bool:
        failures = self._failures.get(key)
        if not failures:
            return False
        now = self._clock.now()
        while failures and now - failures[0] > self._window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return False
        return len(failures) >= self._limit

    def add(self, key: str) -> None:
        if len(self._failures) >= self._max_keys:
            self._failures.clear()  # bounded memory beats perfect accounting under attack
        self._failures.setdefault(key, deque()).append(self._clock.now())
