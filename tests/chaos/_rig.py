"""Measuring a fault experiment: what the verifiers answered while it ran, against what the
freshness rule allows (docs/freshness.md).

- ``Ledger``: the tokens in play, when each revocation was known committed, and every
  probe (which verifier, which token, strict or ordinary route, when sent, the answer).
- ``Prober``: asks every verifier about every token on both kinds of route, in rounds,
  in the background, for as long as the experiment runs.
- ``Outcome``: the four figures each experiment reports (all must be 0 but recovery).

The bound check is conservative, never a false alarm: a verifier may accept a revoked
token on a route with bound B only if the revocation committed at most B seconds before
the check; a probe *sent* later than B after the revocation's response (an upper bound
of its commit) and still accepted is counted.

``KillingProxy`` sits in front of the identity service and SIGKILLs it the moment a
response comes back (the commit happened), dropping that response: a crash between
commit and answer, exactly. ``PrivatePostgres`` is a cluster of the experiment's own
(initdb in a temporary directory, a free port, as the ``postgres`` user when root);
``OwnDatabase`` a database of its own on the shared server, made unavailable by refusing
its connections (the server itself is never stopped or reconfigured).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tessera.verifier import Reason
from tests.system._procs import Agent, Proc, base_env, free_port, spawn

REVOKED_REASONS = frozenset({Reason.SESSION_REVOKED, Reason.FAMILY_REVOKED,
                             Reason.TOKEN_REVOKED, Reason.USER_REVOKED,
                             Reason.TENANT_REVOKED, Reason.CLIENT_REVOKED})


@dataclass
class Outcome:
    name: str
    revoked_accepted_beyond_bound: int = 0
    events_lost: int = 0
    sessions_lost: int = 0
    recovery_seconds: float | None = None
    probes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.revoked_accepted_beyond_bound or self.events_lost
                    or self.sessions_lost) and self.recovery_seconds is not None

    def to_json(self) -> dict[str, Any]:
        return {"experiment": self.name,
                "revoked_accepted_beyond_bound": self.revoked_accepted_beyond_bound,
                "events_lost": self.events_lost, "sessions_lost": self.sessions_lost,
                "recovery_seconds": (None if self.recovery_seconds is None
                                     else round(self.recovery_seconds, 2)),
                "probes": self.probes, "notes": self.notes}


@dataclass(frozen=True)
class Probe:
    agent: int
    token: str
    strict: bool
    sent: float
    ok: bool
    reason: str | None


@dataclass
class Ledger:
    strict_bound: float
    bound: float
    tokens: dict[str, str] = field(default_factory=dict)
    """name → access token"""
    revoked: dict[str, float] = field(default_factory=dict)
    """name → a time after its revocation committed (the response, or the crash)"""
    probes: list[Probe] = field(default_factory=list)

    def revoke(self, name: str, committed_by: float | None = None) -> None:
        self.revoked[name] = time.time() if committed_by is None else committed_by

    def beyond_bound(self) -> list[Probe]:
        late = []
        for probe in self.probes:
            committed = self.revoked.get(probe.token)
            if probe.ok and committed is not None:
                bound = self.strict_bound if probe.strict else self.bound
                if probe.sent > committed + bound:
                    late.append(probe)
        return late

    def live(self) -> list[str]:
        return [name for name in self.tokens if name not in self.revoked]


class Prober:
    """Rounds of checks by every agent, of every token, strict and ordinary."""

    def __init__(self, ledger: Ledger, pool: Sequence[Agent], *, pause: float = 0.05
                 ) -> None:
        self._ledger = ledger
        self._pool = list(pool)
        self._pause = pause
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Prober:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Stopped by a flag, not by cancelling: Python 3.11's wait_for (under each check)
        # can swallow a cancellation that races its result, leaving the task running.
        assert self._task is not None
        self._stop.set()
        await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            for index, agent in enumerate(self._pool):
                if not agent.proc.running:
                    continue
                for name, token in list(self._ledger.tokens.items()):
                    if self._stop.is_set():
                        return
                    for strict in (False, True):
                        sent = time.time()
                        try:
                            reply = await agent.check(token, strict=strict)
                        except (RuntimeError, TimeoutError, OSError):
                            continue
                        self._ledger.probes.append(Probe(
                            index, name, strict, sent, bool(reply["ok"]), reply.get("reason")))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._pause)


async def converged(ledger: Ledger, pool: Sequence[Agent]) -> bool:
    """Every agent is fresh (a strict route accepts every live token) and rejects every
    revoked token for what it is."""
    for agent in pool:
        for name, token in ledger.tokens.items():
            reply = await agent.check(token, strict=name not in ledger.revoked)
            if name in ledger.revoked:
                if reply["ok"] or reply["reason"] not in REVOKED_REASONS:
                    return False
            elif not reply["ok"]:
                return False
    return True


async def recover(ledger: Ledger, pool: Sequence[Agent], since: float, *,
                  deadline: float) -> float | None:
    """Seconds from ``since`` (monotonic) until ``converged``; None past ``deadline`` s."""
    while True:
        if await converged(ledger, pool):
            return time.monotonic() - since
        if time.monotonic() - since > deadline:
            return None
        await asyncio.sleep(0.05)


async def settle(outcome: Outcome, ledger: Ledger, pool: Sequence[Agent], *,
                 head: int) -> None:
    """The final count: revoked tokens some verifier still accepts and events it never
    applied are lost; live tokens refused as revoked are lost sessions."""
    outcome.revoked_accepted_beyond_bound = len(ledger.beyond_bound())
    outcome.probes = len(ledger.probes)
    for agent in pool:
        status = await agent.status()
        outcome.events_lost += max(0, head - int(status["cursor"]))
        for name, token in ledger.tokens.items():
            reply = await agent.check(token)
            if name in ledger.revoked and reply["ok"]:
                outcome.events_lost += 1
            if name not in ledger.revoked and not reply["ok"] \
                    and reply["reason"] in REVOKED_REASONS:
                outcome.sessions_lost += 1


async def outbox_head(url: str, feed: tuple[str, str]) -> int:
    """The outbox head, as the identity service's own range answer states it."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.get("/revocations", params={"after": 0, "limit": 1}, auth=feed)
        response.raise_for_status()
        return int(response.json()["watermark"]["head"])


# -- a crash between commit and response ------------------------------------------------------


class KillingProxy:
    """TCP relay to the identity service. ``arm(kill)``: the next response bytes coming
    back trigger ``kill()`` and are dropped, and the client's connection is closed."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._server: asyncio.Server | None = None
        self._kill: Callable[[], Awaitable[None]] | None = None
        self.killed_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, kill: Callable[[], Awaitable[None]]) -> None:
        self._kill, self.killed_at = kill, None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        for task in (self._pipe(reader, up_writer, upstream=False),
                     self._pipe(up_reader, writer, upstream=True)):
            running = asyncio.get_running_loop().create_task(task)
            self._tasks.add(running)
            running.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *,
                    upstream: bool) -> None:
        try:
            while data := await src.read(65536):
                if upstream and self._kill is not None:
                    kill, self._kill = self._kill, None
                    self.killed_at = time.time()
                    await kill()
                    break
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


# -- a PostgreSQL cluster of our own -----------------------------------------------------------


def postgres_bin() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    return versions[-1].parent if versions else None


class PrivatePostgres:
    """initdb in a temporary directory, ``postgres`` on a free loopback port, killed and
    restarted at will — never the machine's own cluster. As root, it runs as the
    ``postgres`` user (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        found = postgres_bin()
        if found is None:
            raise RuntimeError("PostgreSQL server binaries not found under "
                               "/usr/lib/postgresql/*/bin")
        self.bin = found
        # its own directory under the system temp dir: the postgres user must reach it
        tmp = Path(tempfile.mkdtemp(prefix="tessera-pg-"))
        self.dir = tmp / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._tmp = tmp
        self._starts = 0
        self.proc: Proc | None = None

    def _as_owner(self, cmd: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return cmd
        runuser = shutil.which("runuser")
        if runuser is None:
            raise RuntimeError("running as root without runuser")
        return [runuser, "-u", "postgres", "--", *cmd]

    async def init(self) -> None:
        self._tmp.chmod(0o711)
        self.dir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        proc = await asyncio.create_subprocess_exec(
            *self._as_owner([str(self.bin / "initdb"), "-D", str(self.dir), "-A", "trust",
                             "-U", "postgres", "--no-sync", "-E", "UTF8"]),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, env=base_env())
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed: {err.decode(errors='replace')[-500:]}")

    async def start(self) -> None:
        self._starts += 1
        log = self._tmp / f"postgres-{self._starts}.log"
        self.proc = await spawn("postgres", self._as_owner([
            str(self.bin / "postgres"), "-D", str(self.dir), "-p", str(self.port),
            "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "max_connections=100"]), env=base_env(), cwd=self._tmp, log=log)
        deadline = time.monotonic() + 30
        while True:
            if not self.proc.running:
                raise RuntimeError(f"postgres exited:\n{self.proc.log_tail()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            if "ready to accept connections" in self.proc.log_tail(20):
                return
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL the postmaster and every backend (one process group)."""
        if self.proc is not None:
            await self.proc.kill(signal.SIGKILL)
            self.proc = None

    def remove(self) -> None:
        """Delete the cluster's directory (after ``kill``)."""
        shutil.rmtree(self._tmp, ignore_errors=True)


class OwnDatabase:
    """A database of the experiment's own on a shared PostgreSQL server, which it can make
    unavailable (no new connections, its sessions terminated) and available again —
    without touching the server or anyone else's database."""

    def __init__(self, server_url: str) -> None:
        base, _, _ = server_url.rpartition("/")
        self.name = f"tessera_chaos_{uuid.uuid4().hex[:12]}"
        self.url = f"{base}/{self.name}"
        self._admin = server_url

    async def _run(self, *statements: str) -> None:
        conn = await asyncpg.connect(self._admin)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    async def create(self) -> None:
        await self._run(f'CREATE DATABASE "{self.name}"')

    async def block(self) -> None:
        await self._run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{self.name}'")

    async def unblock(self) -> None:
        await self._run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    async def drop(self) -> None:
        await self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
