"""Tessera's HTTP servers: uvicorn with bounded request headers, time to receive them and
open connections (``ServerSettings``). ``tessera serve`` and ``tessera gateway`` run
through ``run``; the admin console is served by ``tessera serve``.

What uvicorn does alone (0.3x–0.5x, measured in tests/integration/test_http_limits.py):

==================  ================================  ==================================
                    httptools (the default)           h11
==================  ================================  ==================================
huge headers        buffered without bound (5 MB      ``400`` past
                    of headers are answered 200)      ``h11_max_incomplete_event_size``
                                                      (16 KiB), only when they arrive in
                                                      more than one read; never ``431``
slow headers        waited for forever                waited for forever
                    (``timeout_keep_alive`` only runs between requests)
connections         ``limit_concurrency`` answers 503 only once a request's headers are
                    complete: a client that never finishes its headers holds its socket
==================  ================================  ==================================

``BoundedHttpToolsProtocol`` adds, per connection, to uvicorn's httptools protocol:

- **header size**: the bytes of an unfinished request head are counted as they arrive,
  the request line and headers as they are parsed; past ``max_header_bytes`` the answer
  is ``431 Request Header Fields Too Large`` (RFC 6585 §5) and the connection closes.
- **header time**: a timer from the connection's start (and from the first byte of each
  later request) to the end of the headers; when it fires, ``408 Request Timeout``
  (RFC 9110 §15.5.9) and the connection closes. Bodies and long responses (the event
  feed's stream) are not timed.
- **connections**: past ``max_connections`` open connections in the worker, a new one is
  answered ``503`` with ``Retry-After: 1`` and closed before anything is read.

Refusals are plain text with ``Connection: close``; nothing reaches the app.

With ``workers`` > 1 on TCP, each worker listens on a socket of its own, bound to the same
address with ``SO_REUSEPORT`` (``WorkerSockets``): the kernel spreads new connections
over the workers. On uvicorn's one shared socket every worker raced to accept, and libuv
accepts every pending connection per wake-up, so a burst of new keep-alive connections (a
proxy's pool, a load test) often landed on one worker while the other idled — measured:
14 to 16 of 16 connections on one worker in 4 of 20 runs (with libuv's
``UV_TCP_SINGLE_ACCEPT`` too), up to half the throughput and the p99 tripled.

What changes with it: connections waiting in a worker's backlog when that worker stops (a
crash, a restart) are reset rather than taken by another worker; and Linux lets any
process of the same user join the port's group (as any such process could also attach
to the workers themselves).
"""

from __future__ import annotations

from tessera import _extras

_extras.require("server", "the HTTP server")  # one clear line without the extra
# ruff: noqa: E402 (the check above runs before the imports that would fail)

import asyncio
import inspect
import logging
import os
import pickle
import socket
import sys
import time
from itertools import chain
from typing import Any, Final

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors import multiprocess as _multiprocess

from tessera.settings import ServerSettings
from tessera.tls_scope import DEFAULT_CLIENT_CERT_HEADER, ClientCertificateScope

__all__ = ["WORKER_HEALTHCHECK_SECONDS", "BoundedConfig", "BoundedHttpToolsProtocol",
           "WorkerSockets", "run"]

_log = logging.getLogger("uvicorn.error")
_REASONS: Final = {408: b"Request Timeout", 431: b"Request Header Fields Too Large",
                   503: b"Service Unavailable"}
_HEADER_OVERHEAD: Final = 4
"""``": "`` and CRLF around each header, as sent."""
_LINGER: Final = 1.0
"""Seconds a refused connection is still read (and discarded) after the answer: closing
with unread input makes the kernel send a reset, which may destroy the answer before the
client reads it (nginx's ``lingering_close`` for the same reason)."""


WORKER_HEALTHCHECK_SECONDS: Final = 30
"""How long a worker may take to answer the supervisor before it counts as hung."""

_HEALTHCHECK_SLICE: Final = 0.1
"""How often the supervisor, waiting for a worker's answer, checks the worker is alive."""


_UvicornWorker: Any = getattr(_multiprocess, "Process", object)


class WatchedWorker(_UvicornWorker):  # type: ignore[misc]
    """uvicorn's worker handle, with a health check that notices a worker dying while
    the supervisor waits for its answer. The supervisor holds both ends of the ping
    pipe, so a worker's death closes nothing it can see: a worker killed between the
    supervisor's liveness check and its answer (an OOM kill, ``kill -9`` under load)
    was replaced only after the whole ``WORKER_HEALTHCHECK_SECONDS``. (At module level:
    the handle is pickled into the spawned worker.)"""

    def _healthcheck(self, timeout: float) -> bool | None:
        try:
            self.parent_conn.send(b"ping")
            deadline = time.monotonic() + timeout
            while True:
                wait = min(_HEALTHCHECK_SLICE, max(0.0, deadline - time.monotonic()))
                if self.parent_conn.poll(wait):
                    started: bool = self.parent_conn.recv()
                    return started
                if not self.process.is_alive() or time.monotonic() >= deadline:
                    return None
        except (OSError, EOFError, pickle.UnpicklingError):
            return None


def _supervise_watched() -> None:
    """Have ``Multiprocess`` (which names its worker handle at module level) use
    ``WatchedWorker``, in the serving process only; where this uvicorn has no such
    handle (older releases) its own behaviour stays."""
    if hasattr(_UvicornWorker, "_healthcheck"):
        _multiprocess.Process = WatchedWorker  # type: ignore[misc]


_DEFAULTS: Final = ServerSettings()
"""Bounds for a plain ``uvicorn.Config`` (``--http tessera.httpserver:...``)."""


class _HeadersTooLarge(Exception):
    """Raised from a parser callback: the parser stops at once."""


class BoundedConfig(uvicorn.Config):
    """``uvicorn.Config`` with Tessera's bounds; picklable, so workers get them too."""

    def __init__(self, app: Any, *, limits: ServerSettings, **kwargs: Any) -> None:
        super().__init__(app, http=BoundedHttpToolsProtocol, ws="none", **kwargs)
        self.max_header_bytes = limits.max_header_bytes
        self.header_timeout = limits.header_timeout
        self.max_connections = limits.max_connections
        self.client_cert_proxies = tuple(limits.client_cert_proxies)
        self.client_cert_header = limits.client_cert_header


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the three bounds of the module docstring."""

    def __init__(self, config: uvicorn.Config, server_state: ServerState,
                 app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
                 ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_header_bytes: int = getattr(config, "max_header_bytes",
                                              _DEFAULTS.max_header_bytes)
        self._header_timeout: float = getattr(config, "header_timeout",
                                              _DEFAULTS.header_timeout)
        self._max_connections: int = getattr(config, "max_connections",
                                             _DEFAULTS.max_connections)
        self._reading_head = True
        self._head_bytes = 0
        """Bytes received while the current request's head was unfinished."""
        self._head_deadline: float | None = None
        """When the current request's head must be complete (loop time); None between
        requests."""
        self._head_timer: asyncio.TimerHandle | None = None
        """One timer per connection, not per request: it fires at a deadline, and moves
        itself to a later one a request has set since."""
        self._linger: asyncio.TimerHandle | None = None
        self._refusal: int | None = None

    # connections ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._max_connections:
            self.transport = transport
            self._refuse(503, b"Too many connections; try again.", retry_after=True)
            return
        super().connection_made(transport)
        self._start_head_timer()
        self._attach_client_certificate(transport)

    def _attach_client_certificate(self, transport: asyncio.Transport) -> None:
        """The ASGI TLS extension for this connection (``tls_scope``): its verified peer
        certificate, or a trusted proxy's forwarded one; never a header from elsewhere."""
        ssl_object = transport.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app = ClientCertificateScope(
            self.app, peer_cert=peer or None,
            trusted_proxies=getattr(self.config, "client_cert_proxies", ()),
            header=getattr(self.config, "client_cert_header", DEFAULT_CLIENT_CERT_HEADER))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    # header size ---------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused: discarded while lingering
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self._max_header_bytes \
                and self._refusal is None and not self.transport.is_closing():
            self._refuse(431, b"Request header fields too large.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._start_head_timer()

    def on_headers_complete(self) -> None:
        # The request line and headers as parsed, counted once they are all in: a head
        # that arrives over several reads was already bounded by ``data_received``, one
        # that arrived whole is no larger than that read.
        headers = self.headers
        size = len(self.url) + sum(map(len, chain.from_iterable(headers))) \
            + _HEADER_OVERHEAD * len(headers)
        if size > self._max_header_bytes:
            self._refusal = 431
            raise _HeadersTooLarge
        self._reading_head = False
        self._head_deadline = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to any parser error, ours (``_HeadersTooLarge``) included."""
        if self._refusal == 431:
            self._refusal = None
            self._refuse(431, b"Request header fields too large.")
        else:
            super().send_400_response(msg)

    # header time ---------------------------------------------------------------------------
    def _start_head_timer(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.time() + self._header_timeout
            if self._head_timer is None:
                self._head_timer = self.loop.call_at(self._head_deadline, self._check_head)

    def _stop_head_timer(self) -> None:
        self._head_deadline = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _check_head(self) -> None:
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None or self.transport.is_closing():
            return  # between requests: the next one arms the timer again
        if self.loop.time() < deadline:  # a later request's deadline
            self._head_timer = self.loop.call_at(deadline, self._check_head)
            return
        self._head_deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # mid-response: a status line now would corrupt it
            return
        self._refuse(408, b"Request headers not received in time.")

    # answers -------------------------------------------------------------------------------
    def _refuse(self, status: int, message: bytes, *, retry_after: bool = False) -> None:
        """Answer ``status`` with ``message`` and close (after ``_LINGER`` at most, or when
        the client closes); nothing more reaches the app or is sent."""
        self._refusal = status
        self._stop_head_timer()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        head += [b"%s: %s\r\n" % pair for pair in self.server_state.default_headers]
        head += [b"content-type: text/plain; charset=utf-8\r\n",
                 b"content-length: %d\r\n" % len(message), b"connection: close\r\n"]
        if retry_after:
            head.append(b"retry-after: 1\r\n")
        self.transport.write(b"".join(head) + b"\r\n" + message)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger = self.loop.call_later(_LINGER, self.transport.close)
        else:
            self.transport.close()


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class WorkerSockets(list[socket.socket]):
    """The sockets uvicorn's supervisor hands each worker, for TCP with several workers:
    in the supervisor, one socket bound with ``SO_REUSEPORT`` and never listened on (it
    holds the address and reports a taken port before any worker starts; only listening
    sockets take connections); pickled into a spawned worker, a new socket bound to the
    same address (``__reduce__``), on which that worker listens. Every worker — a
    replacement too — gets its own, and the kernel balances connections between them."""

    def __init__(self, host: str, port: int) -> None:
        held = _reuse_port_socket(host, port)
        super().__init__([held])
        self.host, self.port = host, held.getsockname()[1]

    def __reduce__(self) -> tuple[Any, ...]:
        return _worker_sockets, (self.host, self.port)


def _worker_sockets(host: str, port: int) -> list[socket.socket]:
    return [_reuse_port_socket(host, port)]


def _bound_for_workers(config: uvicorn.Config) -> list[socket.socket]:
    try:
        sockets = WorkerSockets(config.host, config.port)
    except OSError as exc:
        _log.error("cannot listen on %s:%s: %s", config.host, config.port, exc)
        sys.exit(STARTUP_FAILURE)
    scheme = "https" if config.is_ssl else "http"
    shown = f"[{config.host}]" if ":" in config.host else config.host
    _log.info("Uvicorn running on %s://%s:%d, one socket per worker (SO_REUSEPORT)",
              scheme, shown, sockets.port)
    return sockets


def _shared_socket_only(config: uvicorn.Config) -> bool:
    """A unix socket, an inherited descriptor or no ``SO_REUSEPORT``: one shared socket."""
    return bool(config.uds or config.fd is not None or not hasattr(socket, "SO_REUSEPORT"))


def run(app: Any, *, limits: ServerSettings, host: str, port: int, workers: int = 1,
        **kwargs: Any) -> None:
    """``uvicorn.run`` with ``BoundedConfig``: ``app`` an ASGI app, or an import string
    (``factory=True`` for a factory) when ``workers`` > 1. ``X-Forwarded-*`` are believed
    from ``limits.forwarded_allow_ips`` only."""
    if limits.forwarded_allow_ips:
        kwargs |= {"proxy_headers": True, "forwarded_allow_ips": limits.forwarded_allow_ips}
    else:
        kwargs |= {"proxy_headers": False}
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        # A spawned worker answers the supervisor's ping only once it has imported the
        # app; uvicorn's 5 s default killed workers still importing on a busy machine
        # (load average 14 on 2 cores) and restarted them forever. A hung worker is
        # still replaced, after this long.
        kwargs.setdefault("timeout_worker_healthcheck", WORKER_HEALTHCHECK_SECONDS)
    config = BoundedConfig(app, limits=limits, host=host, port=port, workers=workers,
                           **kwargs)
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            # older uvicorn releases also want the worker's target
            target = ({"target": server.run}
                      if "target" in inspect.signature(Multiprocess).parameters else {})
            sockets = ([config.bind_socket()] if _shared_socket_only(config)
                       else _bound_for_workers(config))
            _supervise_watched()
            Multiprocess(config, sockets=sockets, **target).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if config.uds and os.path.exists(config.uds):
            os.remove(config.uds)
    if not server.started and config.workers == 1:
        sys.exit(STARTUP_FAILURE)
