"""Process plumbing for the benchmarks: start servers in their own process groups, stop
them (and only them) by group id, measure their CPU from /proc, wait for readiness."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Procs", "Started", "box_ticks", "check_loopback", "free_port", "tree_ticks",
           "wait_http"]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def check_loopback(url: str) -> None:
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit(f"refusing non-loopback URL {url}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Started:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Procs:
    """Every process this benchmark started. Each gets its own session (so its own
    process group, which Ctrl-C on the terminal does not reach); ``stop_all`` signals
    exactly those groups: SIGTERM, then SIGKILL after a grace period."""

    def __init__(self) -> None:
        self._started: list[Started] = []

    def start(self, name: str, cmd: Sequence[str], *, env: Mapping[str, str],
              cwd: Path | None, log: Path, stdin: bytes | None = None) -> Started:
        fh = log.open("ab")
        try:
            proc = subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdout=fh,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        finally:
            fh.close()
        started = Started(name, proc, log)
        self._started.append(started)
        return started

    def stop(self, started: Started, *, grace: float = 8.0) -> None:
        proc = started.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        # children (uvicorn workers) share the group: make sure none is left behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 0)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                os.killpg(proc.pid, 0)
                time.sleep(0.1)
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2.0)
        if started in self._started:
            self._started.remove(started)

    def stop_all(self) -> None:
        for started in reversed(list(self._started)):
            self.stop(started)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree_ticks(root: int) -> int:
    """utime+stime (clock ticks) of ``root`` and all its descendants, like wrk/lib.sh."""
    children = _children_map()
    todo, total = [root], 0
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # fields 14, 15 of proc(5)
    return total


def box_ticks() -> tuple[int, int]:
    """(total, idle) ticks of the whole machine from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = fh.readline().split()[1:]
    values = [int(x) for x in parts]
    return sum(values), values[3] + values[4]


def wait_http(url: str, started: Started, *, timeout: float = 60.0) -> None:
    check_loopback(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if started.proc.poll() is not None:
            raise RuntimeError(f"{started.name} exited with {started.proc.returncode}:\n"
                               f"{started.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{started.name} did not answer {url} within {timeout:.0f}s:\n"
                       f"{started.log_tail()}")
