"""A process of tests/integration/test_throttles.py: parallel attempts on the workers'
shared throttle file. Kept apart so a spawned process imports only what it needs."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

from tessera.identity.throttles import FileStorage, LimitsThrottle


def hit_shared_key(path: str, prefix: str, limit: int, attempts: int,
                   queue: multiprocessing.Queue[int]) -> None:
    """Put how many of ``attempts`` parallel hits on one key got through."""
    async def run() -> int:
        throttle = LimitsThrottle("test", limit, 60, FileStorage(Path(path)), prefix=prefix)
        return sum(await asyncio.gather(*(throttle.hit("shared") for _ in range(attempts))))
    queue.put(asyncio.run(run()))
