"""Polling instead of fixed sleeps (re-exported by ``tests.support``). Standard library
only, so that tests of the lean SDK can use it without loading the identity service."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["eventually"]

T = TypeVar("T")


async def eventually(predicate: Callable[[], T | Awaitable[T]], *, timeout: float = 5.0,
                     interval: float = 0.005, what: str = "condition") -> T:
    """Wait for something background work makes true: call ``predicate`` (sync or async)
    until it returns a truthy value, and return that value; fail the test after
    ``timeout`` seconds, naming ``what``. Use it instead of a fixed sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(interval)
