"""``tessera.httpserver`` on a real listening socket, spoken to with raw sockets the way
an attacker would: oversized request heads get 431, slow ones 408, connections past the
bound 503; honest requests (large bodies, slow apps, keep-alive, pipelining) are untouched.

The first test records what plain uvicorn does with the same inputs, the reason the
bounded protocol exists (see the table in ``tessera.httpserver``).
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.config import STARTUP_FAILURE

from tessera.httpserver import BoundedConfig
from tessera.settings import ServerSettings
from tests.raw_http import exchange, get

LIMITS = ServerSettings(max_header_bytes=4096, header_timeout=0.6, max_connections=4)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes the request's body size; ``/slow`` answers after 1.5 s (longer than the
    header timeout: a slow *app* is not a slow client)."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(1.5)
    body = f"ok {size}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def listening(config: uvicorn.Config) -> AsyncIterator[int]:
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.01)
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def bounded(limits: ServerSettings = LIMITS) -> uvicorn.Config:
    return BoundedConfig(app, limits=limits, host="127.0.0.1", port=0, log_level="error",
                         lifespan="off")


@pytest.mark.parametrize(("http", "oversized"), [("httptools", 200), ("h11", 400)])
async def test_plain_uvicorn_bounds_neither_header_size_nor_header_time(
        http: str, oversized: int) -> None:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical",
                            lifespan="off", http=http)
    async with listening(config) as port:
        # 2 MB of headers: httptools buffers and serves them, h11 says 400 (never 431)
        huge = await exchange(port, get("/", b"X-Big: " + b"a" * 2_000_000))
        assert huge.status == oversized
        slow = await exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n", timeout=1.5)
        assert slow.status is None and slow.elapsed >= 1.4  # still waiting


async def test_headers_over_the_bound_get_431_and_nothing_reaches_the_app() -> None:
    async with listening(bounded()) as port:
        fits = await exchange(port, get("/", b"X-Fits: " + b"a" * 3000))
        assert fits.status == 200, fits.raw
        one_big = await exchange(port, get("/", b"X-Big: " + b"a" * 5000))
        assert one_big.status == 431, one_big.raw
        assert b"connection: close" in one_big.raw.lower()
        many = await exchange(port, get("/", *(b"X-%d: %s" % (i, b"b" * 200)
                                               for i in range(30))))
        assert many.status == 431, many.raw
        long_url = await exchange(port, get("/" + "u" * 5000))
        assert long_url.status == 431, long_url.raw
        # A never-ending header streamed in pieces: refused long before it ends.
        streamed = await exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ",
                                  *([b"a" * 1024] * 2000))
        assert streamed.status == 431, streamed.raw[:200]


async def test_bodies_are_not_header_bytes() -> None:
    body = b"x" * 200_000
    async with listening(bounded()) as port:
        answer = await exchange(port, b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert answer.status == 200 and answer.raw.endswith(b"ok 200000")


async def test_slow_headers_get_408_at_the_deadline_however_they_trickle() -> None:
    async with listening(bounded()) as port:
        partial = await exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\n")
        assert partial.status == 408, partial.raw
        assert 0.5 <= partial.elapsed < 10, partial.elapsed  # 0.6 s, on a busy machine
        assert b"connection: close" in partial.raw.lower()
        trickle = [bytes([c]) for c in get("/", b"X-Slow: " + b"s" * 40)]
        slowloris = await exchange(port, *trickle, pause=0.05)
        assert slowloris.status == 408, slowloris.raw
        assert slowloris.elapsed < 10  # the deadline is not pushed back by each byte (5 s)
        idle = await exchange(port)
        assert idle.status == 408


async def test_a_later_request_on_the_connection_has_its_own_header_deadline() -> None:
    """One timer per connection: armed at its start, it finds a later request's deadline
    (0.6 s from that request's first byte) and waits for it rather than cutting early."""
    async with listening(bounded()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(get("/", close=False))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            await asyncio.wait_for(reader.readexactly(4), 5)
            await asyncio.sleep(0.35)
            began = time.monotonic()
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")  # never finished
            answer = await asyncio.wait_for(reader.read(), 10)
            elapsed = time.monotonic() - began
        finally:
            writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.5 <= elapsed < 10, elapsed  # not at 0.6 s from the connection's start


async def test_a_pipelined_request_is_bounded_like_the_first() -> None:
    async with listening(bounded()) as port:
        # parsed in the same read as the first: refused there (the connection closes)
        both = await exchange(port, get("/", close=False) + get("/", b"X-Big: " + b"a" * 5000))
        assert b"HTTP/1.1 431" in both.raw, both.raw[:400]


async def test_slow_apps_keep_alive_and_pipelining_are_not_cut() -> None:
    async with listening(bounded()) as port:
        slow_app = await exchange(port, get("/slow"))
        assert slow_app.status == 200 and slow_app.elapsed >= 1.4
        # keep-alive: two requests on one connection, the second after the first's
        # answer and within the header timeout of its own start
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(2):
                writer.write(get("/", close=False))
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200"), head
                await asyncio.wait_for(reader.readexactly(4), 5)  # "ok 0"
                await asyncio.sleep(0.4)  # 0.8 s on this connection: over 0.6 in total
        finally:
            writer.close()
        pipelined = await exchange(port, get("/", close=False) + get("/"))
        assert pipelined.raw.count(b"HTTP/1.1 200") == 2, pipelined.raw


async def test_connections_past_the_bound_get_503_at_once() -> None:
    limits = ServerSettings(max_header_bytes=4096, header_timeout=30, max_connections=4)
    async with listening(bounded(limits)) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        try:
            await asyncio.sleep(0.1)
            refused = await exchange(port, get("/"))
            assert refused.status == 503, refused.raw
            assert b"retry-after: 1" in refused.raw.lower()
            assert refused.elapsed < 5
        finally:
            for _, writer in held:
                writer.close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the closed connections
            answer = await exchange(port, get("/"))
            if answer.status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert answer.status == 200, answer.raw


@pytest.mark.parametrize("limits", [
    {"max_header_bytes": 100}, {"header_timeout": 0}, {"max_connections": 0},
])
def test_settings_refuse_unsafe_bounds(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ServerSettings(**limits)  # type: ignore[arg-type]


def _serve_two_workers(monkeypatch: pytest.MonkeyPatch, **kw: Any
                       ) -> tuple[uvicorn.Config, list[socket.socket]]:
    """``httpserver.run`` with two workers up to the supervisor (a stub that records what
    it was given and starts nothing)."""
    from tessera import httpserver

    seen: list[tuple[uvicorn.Config, list[socket.socket]]] = []

    class Supervisor:
        def __init__(self, config: uvicorn.Config, sockets: list[socket.socket],
                     **_kw: Any) -> None:
            seen.append((config, sockets))

        def run(self) -> None:
            pass

    monkeypatch.setattr(httpserver, "Multiprocess", Supervisor)
    httpserver.run("tessera.identity.app:create_app", factory=True,
                   limits=ServerSettings(), host="127.0.0.1", port=0, workers=2, **kw)
    [given] = seen
    return given


def test_workers_get_time_to_import_before_the_supervisor_calls_them_hung(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's 5 s ping deadline killed spawned workers still importing the app on a
    busy machine, and restarted them forever (``tessera serve`` never answered)."""
    from tessera import httpserver

    config, sockets = _serve_two_workers(monkeypatch)
    for sock in sockets:
        sock.close()
    assert config.timeout_worker_healthcheck == httpserver.WORKER_HEALTHCHECK_SECONDS >= 30


class _Worker:
    def __init__(self, alive: bool) -> None:
        self.alive = alive

    def is_alive(self) -> bool:
        return self.alive


def test_a_worker_dying_while_the_supervisor_waits_for_its_answer_is_noticed_at_once(
        ) -> None:
    """The supervisor holds both ends of its ping pipe, so a worker's death closes
    nothing it sees: a worker killed between the liveness check and its answer was
    replaced only after the whole health-check deadline (30 s). A live worker that
    answers late is still heard."""
    import multiprocessing
    import threading

    from tessera import httpserver

    assert hasattr(httpserver._UvicornWorker, "_healthcheck"), "the handle the fix needs"
    handle = httpserver.WatchedWorker.__new__(httpserver.WatchedWorker)
    handle.parent_conn, child = multiprocessing.Pipe()
    handle.process = _Worker(alive=False)  # died after the supervisor's check
    started = time.monotonic()
    assert not handle.ping(timeout=httpserver.WORKER_HEALTHCHECK_SECONDS)
    assert time.monotonic() - started < 1

    handle.process = _Worker(alive=True)

    def answer_late() -> None:
        child.recv()
        time.sleep(0.3)
        child.send(True)

    threading.Thread(target=answer_late, daemon=True).start()
    assert handle.is_ready(timeout=5)


def test_serve_supervises_workers_with_the_watched_handle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from uvicorn.supervisors import multiprocess

    from tessera import httpserver

    monkeypatch.setattr(multiprocess, "Process", multiprocess.Process)  # restored after
    httpserver._supervise_watched()
    assert multiprocess.Process is httpserver.WatchedWorker


def test_each_worker_listens_on_its_own_socket_and_the_kernel_spreads_connections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With one shared socket the workers raced to accept and a burst of keep-alive
    connections could all land on one of them. Each spawned worker now unpickles a
    socket of its own bound with ``SO_REUSEPORT``; the supervisor's socket only holds
    the address (never listened on, it takes no connection)."""
    from tessera import httpserver

    _config, held = _serve_two_workers(monkeypatch)
    assert isinstance(held, httpserver.WorkerSockets)
    workers = [pickle.loads(pickle.dumps(held))[0] for _ in range(2)]  # as spawn does
    try:
        for sock in workers:
            assert sock.getsockname()[1] == held.port
            sock.listen(64)
            sock.setblocking(False)
        clients = [socket.create_connection(("127.0.0.1", held.port)) for _ in range(64)]
        time.sleep(0.2)
        accepted = []
        for sock in workers:
            got = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    conn, _ = sock.accept()
                    conn.close()
                    got += 1
            accepted.append(got)
        for client in clients:
            client.close()
        assert sum(accepted) == 64 and min(accepted) > 0, accepted
    finally:
        for sock in (*workers, *held):
            sock.close()


def test_a_unix_socket_is_still_shared_by_the_workers(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    from tessera import httpserver

    _config, sockets = _serve_two_workers(monkeypatch, uds=str(tmp_path / "s.sock"))
    assert not isinstance(sockets, httpserver.WorkerSockets)
    assert sockets[0].family == socket.AF_UNIX
    sockets[0].close()


def test_a_taken_port_stops_serve_before_any_worker_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tessera import httpserver

    started: list[object] = []
    monkeypatch.setattr(httpserver, "Multiprocess",
                        lambda *a, **kw: started.append(a))  # must not be reached
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(SystemExit) as exited:
            httpserver.run("tessera.identity.app:create_app", factory=True,
                           limits=ServerSettings(), host="127.0.0.1",
                           port=taken.getsockname()[1], workers=2)
    assert exited.value.code == STARTUP_FAILURE and started == []
