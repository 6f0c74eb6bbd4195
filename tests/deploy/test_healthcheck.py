"""deploy/docker/healthcheck.py: 0 for a 2xx answer, 1 for anything else, loopback only."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest

from tests.deploy._support import DEPLOY


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck",
                                                  DEPLOY / "docker" / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/readyz": 200, "/down": 503, "/redirect": 302}.get(self.path, 404)
        self.send_response(status)
        if status == 302:
            self.send_header("location", "/down")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_exit_codes(server: str) -> None:
    check = _module()
    assert check.main(["healthcheck.py", f"{server}/readyz"]) == 0
    assert check.main(["healthcheck.py", f"{server}/down"]) == 1
    assert check.main(["healthcheck.py", f"{server}/redirect"]) == 1
    assert check.main(["healthcheck.py", f"{server}/missing"]) == 1
    assert check.main(["healthcheck.py"]) == 2


def test_nothing_listening_is_unhealthy() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _module().main(["healthcheck.py", f"http://127.0.0.1:{port}/readyz"]) == 1


def test_only_loopback_urls() -> None:
    with pytest.raises(SystemExit):
        _module().healthy("http://example.com/readyz")
