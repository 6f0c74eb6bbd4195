"""The performance peer, node-oidc-provider, set up exactly as
../shared/peers/run_oidc_provider_bench.sh does: its files are read in place from
``shared/peers/oidc-provider``, copied with the lock file into a scratch folder outside
the repository, ``npm ci`` there (once; reused while the lock file is unchanged), then
``NODE_ENV=production PORT=P HOST=127.0.0.1 node server.mjs``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from _procs import Procs, Started, wait_http

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "PEER_FILES", "install_peer", "peer_version",
           "start_peer"]

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
PEER_FILES = ("package.json", "package-lock.json", "server.mjs", "trivial.mjs")


def install_peer(peer_dir: Path, workdir: Path) -> None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: the peer needs node >= 20 and npm")
    if not (peer_dir / "server.mjs").is_file():
        raise SystemExit(f"peer not found at {peer_dir} (expected shared/peers/oidc-provider)")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in PEER_FILES:
        src = peer_dir / name
        if src.is_file():
            dst = workdir / name
            dst.write_bytes(src.read_bytes())
    lock = hashlib.sha256((workdir / "package-lock.json").read_bytes()).hexdigest()
    stamp = workdir / ".bench-lock-sha256"
    installed = (workdir / "node_modules" / "oidc-provider").is_dir()
    if installed and stamp.is_file() and stamp.read_text().strip() == lock:
        return
    if installed and not stamp.is_file():  # installed by run_oidc_provider_bench.sh
        stamp.write_text(lock)
        return
    print(f"# npm ci in {workdir}", flush=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=workdir,
                   check=True, timeout=600)
    stamp.write_text(lock)


def peer_version(workdir: Path) -> str:
    try:
        pkg = json.loads((workdir / "node_modules/oidc-provider/package.json").read_text())
        node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                              check=False).stdout.strip()
        return f"oidc-provider {pkg['version']}, node {node}"
    except (OSError, ValueError, KeyError):
        return "oidc-provider (version unknown)"


def start_peer(procs: Procs, workdir: Path, port: int) -> Started:
    env = {**os.environ, "NODE_ENV": "production", "PORT": str(port), "HOST": "127.0.0.1"}
    started = procs.start("oidc-provider", ["node", "server.mjs"], env=env, cwd=workdir,
                          log=workdir / "server.log")
    wait_http(f"http://127.0.0.1:{port}/jwks", started, timeout=30)
    return started
