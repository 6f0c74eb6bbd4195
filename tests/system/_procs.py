"""Real processes for system tests: ``tessera serve`` as a subprocess, verifier agents
(``bench/_propagation_agent.py``) driven over a pipe, a private ``redis-server`` that a
test may SIGKILL and restart, and the ``tessera`` CLI.

Every process is started in its own session and stopped by its own process-group id
(never by name). Data lives in the test's ``tmp_path``; the server runs with that as its
working directory, so no ``tessera.toml`` from elsewhere is read.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson

from tessera.application import admin
from tessera.core.clock import SystemClock
from tessera.core.users import DEFAULT_TENANT
from tessera.identity.app import ADMIN_SCOPE
from tessera.identity.compose import build_identity
from tessera.identity.feed import EVENTS_SCOPE
from tessera.store.migrations import upgrade_database
from tessera.verifier import Reason
from tests.conftest import FAST_PASSWORDS, KEK, make_settings
from tests.support import REDIRECT, eventually, pkce_pair
from tests.tokens import claims_of as claims_of  # re-exported for the system tests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TESSERA = str(VENV_BIN / "tessera")
AGENT = str(ROOT / "bench" / "_propagation_agent.py")
AUDIENCE = "https://api.example"
PASSWORD = "correct horse battery"
SESSION_ENDED = frozenset({Reason.SESSION_REVOKED, Reason.FAMILY_REVOKED})
"""What a verifier may answer for a logged-out session's token: logout revokes the session
and its refresh families, one event each; whichever it applied first names the reason."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kid_of(jwt: str) -> str:
    head = jwt.split(".")[0]
    header: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(
        head + "=" * (-len(head) % 4)))
    return str(header["kid"])


async def poll(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.02,
               what: str = "condition") -> Any:
    """``tests.support.eventually`` at the pace of real processes (20 ms)."""
    return await eventually(predicate, timeout=timeout, interval=interval, what=what)


# -- processes ------------------------------------------------------------------------------


class Proc:
    """One subprocess in its own session; output to a log file."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def kill(self, sig: int = signal.SIGKILL, *, grace: float = 5.0) -> None:
        """Signal this process's group (only this test's process) and reap it."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        # uvicorn workers share the group: leave none behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        await self.kill(signal.SIGTERM)


async def spawn(name: str, cmd: list[str], *, env: Mapping[str, str], cwd: Path, log: Path,
                pipes: bool = False) -> Proc:
    fh = log.open("ab")
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, env=dict(env), cwd=cwd, start_new_session=True,
            stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if pipes else fh, stderr=fh)
    finally:
        fh.close()
    return Proc(name, proc, log)


def base_env() -> dict[str, str]:
    """This environment without any TESSERA_ setting (tests set their own)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TESSERA_") or k.startswith("TESSERA_TEST_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- the identity service -------------------------------------------------------------------


@dataclass
class Seed:
    """Clients and users created in the store before the server starts."""

    web_id: str
    web_secret: str
    feed_id: str
    feed_secret: str
    admin_id: str
    admin_secret: str
    svc_id: str
    svc_secret: str
    usernames: list[str]


def _copy_template(template: Path, data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, data_dir / "tessera.db")


async def seed(data_dir: Path, template: Path | None, *, users: int = 4,
               database_url: str | None = None) -> Seed:
    """A migrated SQLite file in ``data_dir`` (or the migrated database at
    ``database_url``) with a key ring, a web client, a feed client (``tessera:events``),
    an admin client (``tessera:admin``), a service client (client credentials for
    ``AUDIENCE``) and ``users`` users.

    The service client has a tenant: tokens of a client without one carry no ``tid``,
    which the verifier SDK rejects as malformed."""
    if database_url is None:
        assert template is not None
        await asyncio.to_thread(_copy_template, template, data_dir)
        settings = make_settings(data_dir)
    else:
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(upgrade_database, database_url)
        settings = make_settings(data_dir, database_url=database_url)
    identity = await build_identity(settings, clock=SystemClock(), passwords=FAST_PASSWORDS)
    try:
        web, web_secret = await admin.create_client(
            identity.admin, name="web", grants=("authorization_code", "refresh_token",
                                          "client_credentials"),
            redirect_uris=(REDIRECT,), scope="api:read api:write", audiences=(AUDIENCE,))
        svc, svc_secret = await admin.create_client(
            identity.admin, name="svc", grants=("client_credentials",), scope="api:read",
            audiences=(AUDIENCE,), tenant_id=DEFAULT_TENANT)
        feed, feed_secret = await admin.create_client(
            identity.admin, name="feed", grants=("client_credentials",), scope=EVENTS_SCOPE)
        adm, adm_secret = await admin.create_client(
            identity.admin, name="ops", grants=("client_credentials",), scope=ADMIN_SCOPE)
        names = [f"u{i}-{uuid.uuid4().hex[:6]}" for i in range(users)]
        for name in names:
            await admin.create_user(identity.admin, username=name, password=PASSWORD)
    finally:
        await identity.aclose()
    assert web_secret and feed_secret and adm_secret and svc_secret
    return Seed(web.client_id, web_secret, feed.client_id, feed_secret, adm.client_id,
                adm_secret, svc.client_id, svc_secret, names)


def server_env(data_dir: Path, port: int, *, redis_url: str | None = None,
               stream: str | None = None, **extra: str) -> dict[str, str]:
    env = base_env() | {
        "TESSERA_ISSUER": f"http://127.0.0.1:{port}",
        "TESSERA_DATA_DIR": str(data_dir),
        "TESSERA_KEYS__ENCRYPTION_KEY": KEK,
        "TESSERA_AUDIT_LOG_JSON": "false",
        "TESSERA_BUS__HEARTBEAT": "0.2",
        "TESSERA_BUS__POLL_INTERVAL": "0.05",
    }
    if redis_url:
        env["TESSERA_BUS__REDIS_URL"] = redis_url
        env["TESSERA_BUS__STREAM"] = stream or f"tessera:test:{uuid.uuid4().hex}"
    env.update(extra)
    return env


@dataclass
class Server:
    proc: Proc
    url: str
    env: dict[str, str]
    data_dir: Path

    async def stop(self) -> None:
        await self.proc.stop()

    async def cli(self, *args: str, timeout: float = 20.0) -> str:
        """Run ``tessera ARGS`` against this server's store (no relay runs in it)."""
        env = {k: v for k, v in self.env.items() if k != "TESSERA_BUS__REDIS_URL"}
        proc = await asyncio.create_subprocess_exec(
            TESSERA, *args, env=env, cwd=self.data_dir, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise
        assert proc.returncode == 0, f"tessera {' '.join(args)}: {err.decode()}"
        return out.decode()


async def start_server(data_dir: Path, env: dict[str, str], *, name: str = "tessera",
                       timeout: float = 20.0) -> Server:
    url = env["TESSERA_ISSUER"]
    port = urlsplit(url).port
    assert port is not None
    proc = await spawn(name, [TESSERA, "serve", "--port", str(port)], env=env, cwd=data_dir,
                       log=data_dir / f"{name}.log")
    server = Server(proc, url, env, data_dir)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1.0) as http:
        while True:
            if not proc.running:
                raise RuntimeError(f"{name} exited:\n{proc.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return server
            if time.monotonic() > deadline:
                await proc.kill()
                raise RuntimeError(f"{name} did not start:\n{proc.log_tail()}")
            await asyncio.sleep(0.05)


# -- browser flows over real HTTP -----------------------------------------------------------


class WebApp(Protocol):
    web_id: str
    web_secret: str


async def login(url: str, seed_: WebApp, username: str, *, scope: str = "openid api:read"
                ) -> dict[str, Any]:
    """Authorization code + PKCE through the login page, like a browser (a fresh one: no
    shared login cookie); the token response (access_token, id_token, ...)."""
    verifier, challenge = pkce_pair()
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        params = {"response_type": "code", "client_id": seed_.web_id,
                  "redirect_uri": REDIRECT, "scope": scope, "state": "s",
                  "code_challenge": challenge, "code_challenge_method": "S256"}
        page = await http.get("/authorize", params=params)
        assert page.status_code == 200, page.text
        form = dict(re.findall(r"name='([^']+)' value='([^']*)'", page.text))
        form |= {"username": username, "password": PASSWORD}
        done = await http.post("/authorize", data=form)
        assert done.status_code == 303, done.text
        code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
        response = await http.post("/token", auth=(seed_.web_id, seed_.web_secret), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def logout(url: str, id_token: str) -> None:
    """RP-initiated logout with an ``id_token_hint`` from a browser that is not the one
    that logged in: the user is asked (OIDC RP-Initiated Logout §2) and confirms."""
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        page = await http.get("/logout", params={"id_token_hint": id_token})
        assert page.status_code == 200 and "Sign out?" in page.text, page.text
        form = dict(re.findall(r"name='([^']+)' value='([^']*)'", page.text))
        response = await http.post("/logout", data=form | {"confirm": "yes"})
        assert response.status_code == 200 and "signed out" in response.text, response.text


async def client_token(url: str, client_id: str, secret: str, **data: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        response = await http.post("/token", auth=(client_id, secret),
                                   data={"grant_type": "client_credentials", **data})
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


async def admin_revoke(url: str, seed_: Seed, *, sid: str) -> None:
    """POST /admin/sessions action=revoke with a ``tessera:admin`` token."""
    token = await client_token(url, seed_.admin_id, seed_.admin_secret)
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        response = await http.post("/admin/sessions", data={"action": "revoke", "sid": sid},
                                   headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        assert response.json() == {"sessions": 1}


# -- verifier agents ------------------------------------------------------------------------


@dataclass
class Agent:
    """A verifier process (``bench/_propagation_agent.py``) driven over its pipes."""

    proc: Proc
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _reader: asyncio.Task[None] | None = None
    ready: asyncio.Future[dict[str, Any]] | None = None

    def _start_reading(self) -> None:
        self.ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        stdout = self.proc.proc.stdout
        assert stdout is not None
        while line := await stdout.readline():
            message: dict[str, Any] = orjson.loads(line)
            if message.get("event") == "ready":
                assert self.ready is not None
                if not self.ready.done():
                    self.ready.set_result(message)
            elif "event" in message:
                self.events.put_nowait(message)
            else:
                future = self._waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
        error = RuntimeError(f"agent exited:\n{self.proc.log_tail()}")
        for future in [*self._waiting.values(), self.ready]:
            if future is not None and not future.done():
                future.set_exception(error)
        self._waiting.clear()

    async def request(self, op: str, *, timeout: float = 10.0, **fields: Any
                      ) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        stdin = self.proc.proc.stdin
        assert stdin is not None
        stdin.write(orjson.dumps({"op": op, "id": ident, **fields}) + b"\n")
        await stdin.drain()
        return await asyncio.wait_for(future, timeout)

    async def check(self, token: str, *, strict: bool = False, accept_stale: bool = False
                    ) -> dict[str, Any]:
        """``VerifierService.check`` on an ordinary route (the agent's ``max_staleness``),
        a strict one (``strict_max_staleness``) or one that opted in to stale state."""
        return await self.request("check", token=token, strict=strict,
                                  accept_stale=accept_stale)

    async def accepts(self, token: str, *, strict: bool = False,
                      accept_stale: bool = False) -> bool:
        return bool((await self.check(token, strict=strict, accept_stale=accept_stale))["ok"])

    async def rejects(self, token: str, *, strict: bool = False,
                      accept_stale: bool = False) -> str | None:
        """The rejection reason, or None if accepted."""
        reply = await self.check(token, strict=strict, accept_stale=accept_stale)
        return None if reply["ok"] else str(reply["reason"])

    async def status(self) -> dict[str, Any]:
        return await self.request("status")

    async def close(self) -> None:
        stdin = self.proc.proc.stdin
        if stdin is not None and self.proc.running:
            with contextlib.suppress(OSError):
                stdin.write(b'{"op": "quit"}\n')
                await stdin.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.proc.wait(), 3)
        await self.proc.kill()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)
        if stdin is not None:
            stdin.close()


async def start_agent(server: Server, seed_: Seed, *, source: str, tmp: Path,
                      redis_url: str | None = None, stream: str | None = None,
                      name: str = "agent", heartbeat: float = 0.2,
                      strict_staleness: float = 1.0, max_staleness: float = 30.0,
                      wait: bool = True, extra: tuple[str, ...] = ()) -> Agent:
    """A verifier process. Its strict routes allow ``strict_staleness`` s of staleness,
    its ordinary ones ``max_staleness``; ``wait=False``: ready before any snapshot."""
    cmd = [sys.executable, AGENT, "--issuer", server.url, "--audience", AUDIENCE,
           "--source", source, "--client-id", seed_.feed_id,
           # "=": a base64url secret may start with "-", which argparse takes for an option
           f"--client-secret={seed_.feed_secret}", "--heartbeat", str(heartbeat),
           "--max-backoff", "0.5", "--strict-max-staleness", str(strict_staleness),
           "--max-staleness", str(max_staleness),
           "--verifier-id", f"{name}-{uuid.uuid4().hex[:6]}",
           "--report-interval", "1", *([] if wait else ["--no-wait"]), *extra]
    if source == "redis":
        assert redis_url and stream
        cmd += ["--redis-url", redis_url, "--stream", stream]
    proc = await spawn(name, cmd, env=base_env(), cwd=tmp, log=tmp / f"{name}.log", pipes=True)
    agent = Agent(proc)
    agent._start_reading()
    assert agent.ready is not None
    try:
        await asyncio.wait_for(asyncio.shield(agent.ready), 20)
    except BaseException:
        await agent.close()
        raise
    return agent


@contextlib.asynccontextmanager
async def agents(server: Server, seed_: Seed, count: int, **kw: Any
                 ) -> AsyncIterator[list[Agent]]:
    started = await asyncio.gather(*(start_agent(server, seed_, name=f"agent{i}", **kw)
                                     for i in range(count)), return_exceptions=True)
    ok = [a for a in started if isinstance(a, Agent)]
    try:
        for result in started:
            if isinstance(result, BaseException):
                raise result
        yield ok
    finally:
        for agent in ok:
            await agent.close()


# -- a private Redis --------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of this test alone, on its own port: SIGKILL it and restart it
    (empty: no persistence) without touching the machine's shared Redis."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._tmp = tmp
        self.proc: Proc | None = None

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = await spawn("redis", [binary, "--port", str(self.port), "--bind",
                                          "127.0.0.1", "--save", "", "--appendonly", "no",
                                          "--daemonize", "no", "--dir", str(self._tmp)],
                                env=base_env(), cwd=self._tmp, log=self._tmp / "redis.log")
        deadline = time.monotonic() + 10
        while True:
            if not self.proc.running:
                raise RuntimeError(f"redis-server exited:\n{self.proc.log_tail()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def kill(self) -> None:
        if self.proc is not None:
            await self.proc.kill(signal.SIGKILL)
            self.proc = None


class TcpProxy:
    """A TCP relay in front of a server, to cut one client's connection on demand.

    ``forward``: relay bytes. ``refuse``: close every connection and refuse new ones (a
    dropped connection / server unreachable). ``blackhole``: keep connections open but
    silently discard everything, both ways (a partition nobody tells the client about);
    connections blackholed stay dead after ``forward`` is restored, as after a real
    partition where the far side has moved on.
    """

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self.mode = "forward"
        self._server: asyncio.Server | None = None
        self._conns: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, list[bool]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        if self.mode == "refuse":
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        dead = [self.mode == "blackhole"]
        self._conns.append((writer, up_writer, dead))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst, dead))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, dead: list[bool]
                    ) -> None:
        try:
            while data := await src.read(65536):
                if dead[0]:
                    continue
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not dead[0]:
                dst.close()

    def refuse(self) -> None:
        self.mode = "refuse"
        for client, upstream, _ in self._conns:
            client.close()
            upstream.close()
        self._conns.clear()

    def blackhole(self) -> None:
        self.mode = "blackhole"
        for _, _, dead in self._conns:
            dead[0] = True

    def forward(self) -> None:
        self.mode = "forward"

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for client, upstream, _ in self._conns:
            client.close()
            upstream.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
