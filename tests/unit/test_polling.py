"""``tests.polling.eventually``: the one way tests wait for background work."""

from __future__ import annotations

import asyncio

import pytest

from tests.polling import eventually


async def test_returns_the_first_truthy_value_of_a_sync_or_async_predicate() -> None:
    calls = []

    def sync() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert await eventually(sync, interval=0) == 3

    async def later() -> str:
        await asyncio.sleep(0)
        return "done"

    assert await eventually(later) == "done"


async def test_fails_the_test_after_the_timeout_naming_what_it_waited_for() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AssertionError, match=r"relay caught up not met within 0\.05 s"):
        await eventually(lambda: False, timeout=0.05, what="relay caught up")
    assert 0.05 <= loop.time() - started < 2
