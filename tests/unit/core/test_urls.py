"""The one loopback rule behind every http-on-loopback exception."""

from __future__ import annotations

import pytest

from tessera.core.urls import is_loopback_host


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("LOCALHOST", True), ("api.localhost", True), ("localhost.", True),
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost.example", False), ("notlocalhost", False), ("10.0.0.1", False),
    ("0.0.0.0", False), ("example.com", False), ("", False), (None, False),
    ("127.0.0.1.nip.io", False),
])
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
