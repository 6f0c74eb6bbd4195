"""Real upstreams for the federation tests.

- ``upstream``: node-oidc-provider (``tests/federation/upstream.mjs``) on loopback, its
  packages installed once with ``npm ci`` from ../shared/peers/oidc-provider's lock file
  into a scratch folder (as bench/_peer.py does). Missing node or peers: skipped locally,
  a failure in CI.
- ``fed``: this test's Tessera as a real HTTP server (uvicorn in the test's event loop)
  on a loopback port, its issuer that URL: the upstream redirects browsers to it and
  sends it back-channel logout tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tessera.core.clock import SystemClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.store.sql import SqlStore
from tests.conftest import IN_CI, make_identity, make_settings
from tests.e2e.conftest import _memoised_key_parsing, sqlite_template

__all__ = ["_memoised_key_parsing", "sqlite_template"]  # ready keys, as in tests/e2e

REPO = Path(__file__).resolve().parents[2]
PEERS = Path(os.environ.get("TESSERA_PEERS_DIR", REPO.parent / "shared" / "peers"))
WORKDIR = Path(os.environ.get("TESSERA_FED_UPSTREAM_DIR",
                              Path(tempfile.gettempdir()) / "tessera-fed-upstream"))
ACCOUNTS: dict[str, Any] = {
    "alice": {"password": "alice-upstream-pw", "otp": "246810",
              "claims": {"email": "alice@corp.example", "email_verified": True,
                         "name": "Alice Upstream", "groups": ["engineering", "helpdesk"],
                         "department": "R&D", "employee_number": "E-1001"}},
    "bob": {"password": "bob-upstream-pw", "otp": "135790",
            "claims": {"email": "bob@corp.example", "email_verified": False,
                       "name": "Bob Upstream", "groups": ["sales"]}},
}


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"the upstream OpenID provider is required in CI: {why}")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _install() -> Path:
    """Once per machine; xdist workers wait for each other on a file lock."""
    WORKDIR.mkdir(parents=True, exist_ok=True)
    with (WORKDIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _install_locked()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _install_locked() -> Path:
    peer = PEERS / "oidc-provider"
    if shutil.which("node") is None or shutil.which("npm") is None:
        _unavailable("node and npm are not installed")
    if not (peer / "package-lock.json").is_file():
        _unavailable(f"node-oidc-provider peer not found at {peer}")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        if not (WORKDIR / name).is_file() or \
                (WORKDIR / name).read_bytes() != (peer / name).read_bytes():
            (WORKDIR / name).write_bytes((peer / name).read_bytes())
    script = (Path(__file__).parent / "upstream.mjs").read_bytes()
    if not (WORKDIR / "upstream.mjs").is_file() or \
            (WORKDIR / "upstream.mjs").read_bytes() != script:
        (WORKDIR / "upstream.mjs").write_bytes(script)
    lock = hashlib.sha256((WORKDIR / "package-lock.json").read_bytes()).hexdigest()
    stamp = WORKDIR / ".lock-sha256"
    if not ((WORKDIR / "node_modules" / "oidc-provider").is_dir() and stamp.is_file()
            and stamp.read_text().strip() == lock):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=WORKDIR, check=True, timeout=600)
        stamp.write_text(lock)
    return WORKDIR


@dataclass
class Upstream:
    issuer: str
    accounts: dict[str, Any]

    def register(self, redirect_uri: str, backchannel_logout_uri: str) -> tuple[str, str]:
        """Dynamic client registration (RFC 7591): Tessera as a confidential client."""
        response = httpx.post(f"{self.issuer}/reg", json={
            "redirect_uris": [redirect_uri], "backchannel_logout_uri": backchannel_logout_uri,
            "backchannel_logout_session_required": True,
            "token_endpoint_auth_method": "client_secret_basic"}, timeout=5)
        assert response.status_code == 201, response.text
        body = response.json()
        return body["client_id"], body["client_secret"]

    def set_claims(self, login: str, claims: dict[str, Any]) -> None:
        """The upstream directory changed (its profile, its groups)."""
        response = httpx.post(f"{self.issuer}/test/account",
                              json={"login": login, "claims": claims}, timeout=5)
        assert response.status_code == 204, response.text


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    workdir = _install()
    port = free_port()
    log = (workdir / f"upstream-{port}.log").open("wb")
    env = {**os.environ, "PORT": str(port), "UPSTREAM_ACCOUNTS": json.dumps(ACCOUNTS),
           "NODE_ENV": "development"}
    proc = subprocess.Popen(["node", "upstream.mjs"], cwd=workdir, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration",
                             timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the upstream OpenID provider did not start: "
                            + (workdir / f"upstream-{port}.log").read_text()[-2000:])
            time.sleep(0.1)
        yield Upstream(issuer, ACCOUNTS)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass
class Fed:
    identity: Identity
    url: str


@pytest.fixture
async def fed(tmp_path: Path, sqlite_store: SqlStore) -> AsyncIterator[Fed]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path, issuer=url)
    identity = await make_identity(settings, sqlite_store, SystemClock())  # type: ignore[arg-type]
    server, task = await _serve(identity, port)
    try:
        yield Fed(identity, url)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def _serve(identity: Identity, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(uvicorn.Config(build_app(identity), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    task = asyncio.get_running_loop().create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert not task.done(), "the Tessera server did not start"
        assert time.monotonic() < deadline, "the Tessera server did not start in time"
        await asyncio.sleep(0.01)
    return server, task


@pytest.fixture
async def second(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Fed]:
    """A second Tessera instance as another upstream provider (a real server)."""
    from tessera.store.sql import create_store

    path = tmp_path / "upstream" / "tessera.db"
    path.parent.mkdir()
    shutil.copy(sqlite_template, path)
    store = create_store(f"sqlite:///{path}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    identity = await make_identity(make_settings(path.parent, issuer=url), store,
                                   SystemClock())  # type: ignore[arg-type]
    server, task = await _serve(identity, port)
    try:
        yield Fed(identity, url)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await store.close()
