"""Who may scrape ``/metrics``, and the separate metrics listener (``metrics.port``).

One rule for both places that serve metrics (the identity app's ``/metrics`` route and
the listener the ``tessera serve`` supervisor runs): with a scrape token configured the
request must carry ``Authorization: Bearer <token>`` (constant-time comparison), else the
metrics are served only where the operator chose so (``public``, or the separate port,
which is protected by the network it listens on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from tessera.core.secrets import constant_time_equal

__all__ = ["MetricsListener", "ScrapeRefused", "authorize_scrape"]

_PREFIX = "bearer "


class ScrapeRefused(Exception):
    """The scrape is not allowed: ``status`` 401 (token missing or wrong) or 403 (metrics
    are not served here without configuration)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    @property
    def challenge(self) -> str | None:
        return 'Bearer realm="metrics"' if self.status == 401 else None


def authorize_scrape(authorization: str | None, *, token: str | None, open_: bool) -> None:
    """Raise ``ScrapeRefused`` unless this scrape may read the metrics. ``open_``: served
    without a token (``metrics.public``, or the separate port)."""
    if token is not None:
        sent = authorization or ""
        if not (sent[:len(_PREFIX)].lower() == _PREFIX
                and constant_time_equal(sent[len(_PREFIX):].strip(), token)):
            raise ScrapeRefused(401, "invalid_token", "a valid metrics scrape token is required")
        return
    if not open_:
        raise ScrapeRefused(403, "access_denied",
                            "metrics are not public: set metrics.token or metrics.port "
                            "(docs/metrics.md)")


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _guarded(app: WsgiApp, token: str | None) -> WsgiApp:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            authorize_scrape(environ.get("HTTP_AUTHORIZATION"), token=token, open_=True)
        except ScrapeRefused as exc:
            body = (f'{{"error": "{exc.error}", "error_description": '
                    f'"{exc.description}"}}').encode()
            headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                       ("Content-Length", str(len(body)))]
            if exc.challenge:
                headers.append(("WWW-Authenticate", exc.challenge))
            start_response(f"{exc.status} Unauthorized", headers)
            return [body]
        return app(environ, start_response)

    return guarded


class MetricsListener:
    """``/metrics`` (any path) of ``registry`` on ``host:port``, in daemon threads."""

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int,
                 token: str | None) -> None:
        self._server = make_server(host, port, _guarded(make_wsgi_app(registry), token),
                                   server_class=_Server, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="tessera-metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsListener:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
