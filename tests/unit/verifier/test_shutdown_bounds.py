"""Shutting a verifier down never hangs on its revocation feed: a read that swallows its
cancellation, or a Redis client whose close never completes (redis/redis-py#3941), costs
at most the close timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from tessera.bus import redis_streams
from tessera.bus.redis_streams import RedisStreamsBus
from tessera.core.clock import SystemClock
from tessera.verifier.revocation import follower as follower_module
from tessera.verifier.revocation.follower import RevocationFollower
from tessera.verifier.revocation.state import RevocationState


class StubbornSource:
    """Its feed ignores the first cancellation (as a client library's read may)."""

    def __init__(self) -> None:
        self.closed = False

    async def snapshot(self) -> Mapping[str, Any]:
        return {"seq": 0, "events": []}

    async def events_after(self, after: int) -> Mapping[str, Any]:
        return {"events": [], "next": None}

    async def follow(self, after: int) -> AsyncIterator[list[Mapping[str, Any]]]:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(3600)  # swallowed: keeps "reading"
        yield []

    async def aclose(self) -> None:
        self.closed = True


async def test_a_feed_that_swallows_its_cancellation_does_not_hang_the_close(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follower_module, "CLOSE_TIMEOUT", 0.2)
    source = StubbornSource()
    follower = RevocationFollower(RevocationState(), source, clock=SystemClock())
    follower.start()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await follower.aclose()
    assert time.monotonic() - started < 2.0
    assert source.closed


class HangingClient:
    def register_script(self, _script: str) -> object:
        return object()

    async def aclose(self) -> None:
        await asyncio.sleep(3600)


async def test_a_redis_client_that_never_finishes_closing_does_not_hang_the_bus(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_streams, "CLOSE_TIMEOUT", 0.2)
    bus = RedisStreamsBus(HangingClient())  # type: ignore[arg-type]
    started = time.monotonic()
    await bus.aclose()
    assert time.monotonic() - started < 2.0
