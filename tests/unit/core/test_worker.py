"""``BackgroundLoop``: work again at once while there is work, wait for ``notify`` or the
idle interval when there is none, survive a failing step, stop on ``aclose``."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tessera.core.worker import BackgroundLoop, wait_event

_log = logging.getLogger("tests.worker")


class Steps(BackgroundLoop):
    def __init__(self, results: list[bool | Exception], interval: float) -> None:
        super().__init__("test loop", _log)
        self.results = results
        self.calls = 0
        self.interval = interval
        self.drained = asyncio.Event()

    async def step(self) -> bool:
        self.calls += 1
        if not self.results:
            self.drained.set()
            return False
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    def idle_interval(self) -> float:
        return self.interval


async def test_busy_steps_run_back_to_back_without_waiting() -> None:
    loop = Steps([True, True, True], interval=60)
    loop.start()
    await asyncio.wait_for(loop.drained.wait(), 2)
    assert loop.calls == 4  # three busy rounds, then one that found nothing
    await loop.aclose()


async def test_notify_cuts_the_idle_wait_short() -> None:
    loop = Steps([], interval=60)
    loop.start()
    await asyncio.wait_for(loop.drained.wait(), 2)
    loop.drained.clear()
    loop.notify()
    await asyncio.wait_for(loop.drained.wait(), 2)  # not 60 s
    assert loop.calls == 2
    await loop.aclose()


async def test_a_failing_step_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    loop = Steps([RuntimeError("bug"), True], interval=0.01)
    with caplog.at_level(logging.ERROR, logger="tests.worker"):
        loop.start()
        await asyncio.wait_for(loop.drained.wait(), 2)
    assert loop.calls == 3
    assert "test loop failed; retrying" in caplog.text
    await loop.aclose()


async def test_aclose_stops_the_task_and_start_is_idempotent() -> None:
    loop = Steps([], interval=60)
    loop.start()
    loop.start()
    await asyncio.wait_for(loop.drained.wait(), 2)
    await loop.aclose()
    await loop.aclose()
    calls = loop.calls
    loop.notify()
    await asyncio.sleep(0.01)
    assert loop.calls == calls == 1


async def test_wait_event_says_whether_the_event_fired() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 5) is True


async def test_a_cancel_arriving_as_the_event_fires_still_cancels() -> None:
    """The Python 3.11 ``wait_for`` race: the waiter is cancelled in the same loop turn
    that sets the event; the cancellation must not be swallowed."""
    for _ in range(50):
        event = asyncio.Event()

        async def waiter(fired: asyncio.Event = event) -> None:
            while True:
                await wait_event(fired, 60)
                fired.clear()

        task = asyncio.get_running_loop().create_task(waiter())
        await asyncio.sleep(0)
        event.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
