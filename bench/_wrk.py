"""wrk runs exactly as ../shared/peers/wrk/lib.sh does them: ``wrk -t1 -cC -dDs --timeout 5s``
with the shared ``req.lua`` (request from the environment, one JSON summary line), and
the server's CPU (its process tree, in cores) and the box's busy % over the run."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _procs import CLK_TCK, box_ticks, check_loopback, tree_ticks

__all__ = ["LoadResult", "ensure_wrk", "run_wrk"]

# Equivalent of shared/peers/wrk/req.lua, used only when the shared file is absent.
_REQ_LUA = r'''
wrk.method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
if body and #body > 0 then wrk.body = body end
local ctype = os.getenv("WRK_CTYPE")
if ctype and #ctype > 0 then wrk.headers["Content-Type"] = ctype end
local auth = os.getenv("WRK_AUTH")
if auth and #auth > 0 then wrk.headers["Authorization"] = auth end

done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"label":"%s","requests":%d,"duration_s":%.2f,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    os.getenv("WRK_LABEL") or "", summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
'''


@dataclass
class LoadResult:
    side: str
    label: str
    tool: str
    conns: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    """Socket-level errors: connect, read, write, timeout."""
    non2xx: int
    """Responses with status >= 400 (wrk's ``errors.status``) or other non-200s."""
    server_cpu_cores: float
    box_busy_pct: float
    client_cpu_cores: float = 0.0
    """CPU of the load generator (wrk, or the asyncio generator) in cores."""
    checks: list[str] = field(default_factory=list)
    ok: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def other_cpu_cores(self) -> float:
        """Busy cores on the box not explained by the server and the load generator:
        anything else running during the run (another benchmark, a test suite)."""
        busy = self.box_busy_pct / 100 * (os.cpu_count() or 1)
        return round(max(0.0, busy - self.server_cpu_cores - self.client_cpu_cores), 2)

    @property
    def cpu_us_per_req(self) -> float:
        """Server CPU per successful request, µs: steadier than req/s on a noisy box."""
        return round(self.server_cpu_cores / self.rps * 1e6, 0) if self.rps else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "other_cpu_cores": self.other_cpu_cores,
                "cpu_us_per_req": self.cpu_us_per_req}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: apt-get update && apt-get install -y wrk")
    print("# wrk missing: apt-get install -y wrk", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env,
                      stdout=subprocess.DEVNULL, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL,
                       check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env,
                       stdout=subprocess.DEVNULL, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def lua_script(shared: Path, scratch: Path) -> Path:
    if shared.is_file():
        return shared
    path = scratch / "req.lua"
    path.write_text(_REQ_LUA)
    return path


def run_wrk(*, side: str, label: str, server_pid: int, conns: int, seconds: int, url: str,
            lua: Path, method: str = "POST", body: str = "", auth: str = "",
            ctype: str = "application/x-www-form-urlencoded") -> LoadResult:
    check_loopback(url)
    env = {**os.environ, "WRK_LABEL": label, "WRK_METHOD": method, "WRK_BODY": body,
           "WRK_AUTH": auth, "WRK_CTYPE": ctype}
    s0, b0, t0, c0 = tree_ticks(server_pid), box_ticks(), time.monotonic(), _children_cpu()
    proc = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "-s", str(lua), url],
        env=env, capture_output=True, text=True, timeout=seconds + 30, check=False)
    s1, b1, t1, c1 = tree_ticks(server_pid), box_ticks(), time.monotonic(), _children_cpu()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed for {label}:\n{proc.stdout}\n{proc.stderr}")
    j = json.loads(line[len("WRKJSON "):])
    wall = t1 - t0
    tot, idle = b1[0] - b0[0], b1[1] - b0[1]
    return LoadResult(
        side=side, label=label, tool="wrk -t1", conns=conns, requests=j["requests"],
        duration_s=j["duration_s"], rps=j["rps"], p50_ms=j["p50_ms"], p99_ms=j["p99_ms"],
        max_ms=j["max_ms"],
        errors=j["err_connect"] + j["err_read"] + j["err_write"] + j["err_timeout"],
        non2xx=j["err_status"],
        server_cpu_cores=round((s1 - s0) / CLK_TCK / wall, 2),
        box_busy_pct=round(100 * (tot - idle) / tot, 1) if tot else 0.0,
        client_cpu_cores=round((c1 - c0) / wall, 2),
    )
