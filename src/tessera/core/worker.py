"""``BackgroundLoop``: one asyncio task that does work in steps — again at once while a
step found work, else after ``notify()`` or an idle interval, whichever comes first.

The outbox relay, the signal fan-out and the signal pusher are such loops; they differ
only in their ``step`` (what one round does and which failures are expected). A step
that raises anything else is logged with its stack and retried after the idle interval:
a bug must not stop every later event. (The relay catches every failure in its own
``step`` and backs off exponentially instead: ``tessera.bus.relay``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

__all__ = ["BackgroundLoop", "wait_event"]


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set.

    Not ``asyncio.wait_for``: on Python 3.11 it can swallow a cancellation that arrives
    as the event fires (CPython gh-86296), so a loop stopped by ``cancel()`` would go on
    and whoever awaits it hang. ``asyncio.timeout`` lets the cancellation through."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class BackgroundLoop:
    """Subclasses implement ``step`` (True: found work, run again at once) and
    ``idle_interval`` (seconds to wait when there was none); ``start`` / ``aclose``
    run and stop the task, ``notify`` cuts a wait short."""

    def __init__(self, name: str, log: logging.Logger) -> None:
        self._name = name
        self._log = log
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        while True:
            try:
                busy = await self.step()
            except Exception:  # a bug must not stop every later round
                self._log.exception("%s failed; retrying", self._name)
                busy = False
            if not busy:
                await self.idle()

    async def idle(self) -> None:
        """Wait for ``notify`` or ``idle_interval()`` seconds."""
        await wait_event(self._wake, self.idle_interval())
        self._wake.clear()

    async def step(self) -> bool:
        raise NotImplementedError

    def idle_interval(self) -> float:
        raise NotImplementedError
