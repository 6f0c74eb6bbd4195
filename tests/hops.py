"""Counting aiosqlite's thread hops: each call it queues to its connection's thread."""

from __future__ import annotations

from typing import Any

import aiosqlite
import pytest


def count_aiosqlite_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on (for the test), the name of each function aiosqlite runs in a
    connection's thread, in order."""
    hops: list[str] = []
    queue = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await queue(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return hops
