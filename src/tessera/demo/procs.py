"""Child processes of the demo: started in their own process groups, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import httpx

__all__ = ["Processes", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._procs: list[tuple[str, asyncio.subprocess.Process]] = []

    async def start(self, name: str, argv: list[str], *, env: dict[str, str],
                    health: str) -> None:
        log = (self._logs / f"{name}.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            *argv, env={**os.environ, **env}, stdout=log, stderr=log,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        self._procs.append((name, proc))
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                if proc.returncode is not None:
                    raise RuntimeError(f"{name} exited; see {self._logs / (name + '.log')}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(health)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start; see {self._logs}/{name}.log")
                await asyncio.sleep(0.1)

    async def stop_all(self) -> None:
        """SIGTERM every process group, then SIGKILL what is left after 5 s."""
        for _, proc in reversed(self._procs):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in reversed(self._procs):
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        self._procs.clear()
