"""``AckReporter``: tell the identity service which revocation events this verifier has
applied, so logout completion is a measured fact (``POST /revocations/acks``).

Batched: one report carries the cursor, which covers every event up to it. When the
cursor moves, the report goes out ``delay`` seconds later (moves meanwhile are folded into
it, so a burst of revocations costs one report, not one per event) and carries ``age``:
how long ago the cursor reached that value, so the identity service dates the apply
precisely however late the report travels. Every ``interval`` seconds a report goes out
regardless, so the identity service knows this verifier is alive. A failed report is
logged and retried at the next beat; it never affects verification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket

import httpx

from tessera.core.clock import Clock
from tessera.core.worker import wait_event
from tessera.verifier.revocation.state import RevocationState

__all__ = ["AckReporter", "default_verifier_id"]

_log = logging.getLogger("tessera.verifier")


def default_verifier_id(service: str) -> str:
    """``<service>@<host>/<pid>``, printable ASCII, at most 200 characters."""
    raw = f"{service}@{socket.gethostname()}/{os.getpid()}"
    return "".join(c for c in raw if "!" <= c <= "~")[:200] or f"verifier/{os.getpid()}"


class AckReporter:
    def __init__(self, client: httpx.AsyncClient, url: str, *, verifier_id: str,
                 service: str, state: RevocationState, clock: Clock,
                 interval: float = 5.0, delay: float = 0.5, jitter: float = 0.0) -> None:
        self._client = client
        self._url = url
        self.verifier_id = verifier_id
        self._service = service[:200]
        self._state = state
        self._clock = clock
        self._interval = interval
        self._delay = delay
        self._jitter = min(jitter, interval / 4)
        """Each report waits ``delay`` plus a random share of this: verifiers that applied
        the same event do not all report in the same instant. At most a quarter of
        ``interval``, so reports stay as close together as the liveness beat promises."""
        self._moved = asyncio.Event()
        self._cursor_seen = state.cursor
        self._moved_at = clock.now()
        """When the cursor reached its current value (as far as ``wake`` saw)."""
        self._task: asyncio.Task[None] | None = None
        self.reported: int | None = None
        """The cursor of the last report the identity service accepted."""
        self.failures = 0

    def wake(self) -> None:
        """The cursor may have moved (the follower applied a batch): report soon."""
        cursor = self._state.cursor
        if cursor != self._cursor_seen:
            self._cursor_seen, self._moved_at = cursor, self._clock.now()
        if self.reported != cursor:
            self._moved.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            if await wait_event(self._moved, self._interval):
                # fold the rest of the burst in; spread from the other verifiers' reports
                await asyncio.sleep(self._delay + random.uniform(0.0, self._jitter))  # noqa: S311 (timing, not a secret)
            self._moved.clear()
            if self._state.loaded:
                await self.report_once()

    async def report_once(self) -> bool:
        cursor, now = self._state.cursor, self._clock.now()
        lag = self._state.lag(now)
        age = max(0.0, now - self._moved_at) if cursor == self._cursor_seen else 0.0
        body = {"verifier_id": self.verifier_id, "service": self._service, "cursor": cursor,
                "lag": None if math.isinf(lag) else round(lag, 3), "age": round(age, 4)}
        try:
            response = await self._client.post(self._url, json=body, timeout=5.0)
        except httpx.HTTPError as exc:
            return self._failed(type(exc).__name__)
        if response.status_code != 204:
            return self._failed(f"HTTP {response.status_code}")
        self.reported = cursor
        return True

    def _failed(self, why: str) -> bool:
        self.failures += 1
        if self.failures in (1, 10) or self.failures % 100 == 0:
            _log.warning("applied-seq report to %s failed (%s; %d so far)", self._url, why,
                         self.failures)
        return False

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
