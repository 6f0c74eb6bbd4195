"""A per-process map whose entries are trusted for ``ttl`` seconds: what rarely changes
and is read on a hot path (clients, tenant standing). Bounded: emptied when full."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["TtlCache"]

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, ttl: float, *, maxsize: int = 10_000) -> None:
        self._ttl = ttl
        self._maxsize = maxsize
        self._entries: dict[str, tuple[float, V]] = {}

    def fresh(self, key: str, now: float) -> tuple[bool, V | None]:
        """``(True, value)`` when ``key`` was put less than ``ttl`` before ``now``."""
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return True, hit[1]
        return False, None

    def put(self, key: str, value: V, now: float) -> None:
        if len(self._entries) > self._maxsize:
            self._entries.clear()
        self._entries[key] = (now, value)

    def forget(self, key: str | None = None) -> None:
        """Drop one key (or every key)."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)
