"""``BffSettings``: the secure defaults are not optional."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tessera.bff import BffSettings, check_csrf
from tessera.bff.settings import is_loopback_url, origin_of
from tessera.keys import Sealer

BASE: dict[str, Any] = {"public_url": "https://app.example", "issuer": "https://id.example",
                        "client_id": "c", "client_secret": "s",
                        "secret_key": Sealer.new_kek_b64()}


def _settings(**overrides: Any) -> BffSettings:
    return BffSettings(**{**BASE, **overrides})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8090", "http://localhost:3000",
                                 "http://[::1]:8090", "https://app.example"])
def test_https_or_loopback_public_url(url: str) -> None:
    assert _settings(public_url=url).public_url == url


@pytest.mark.parametrize(("field", "value"), [
    ("public_url", "http://app.example"), ("public_url", "https://app.example/?x=1"),
    ("public_url", "app.example"), ("secret_key", "c2hvcnQ"), ("secret_key", "!!!"),
    ("routes", {"Bad Name": "http://x"}), ("routes", {"orders": "ftp://x"}),
    ("routes", {"orders": "http://x/?q=1"}), ("post_login_redirect", "//evil.example"),
    ("post_login_redirect", "https://evil.example"),
    ("allowed_origins", ("not an origin",)), ("allowed_origins", ("https://[::1",)),
])
def test_unsafe_values_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        _settings(**{field: value})


def test_idle_timeout_cannot_exceed_absolute() -> None:
    with pytest.raises(ValidationError):
        _settings(session_idle_timeout=7200, session_absolute_timeout=3600)


def test_revocation_feed_needs_the_audience() -> None:
    with pytest.raises(ValidationError, match="audience"):
        _settings(revocation_feed=True)
    assert _settings(revocation_feed=True, audience="https://api.example").revocation_feed


def test_origins_and_loopback() -> None:
    assert origin_of("HTTPS://App.Example:443/x") == "https://app.example"
    assert origin_of("http://127.0.0.1:8090/") == "http://127.0.0.1:8090"
    assert is_loopback_url("http://localhost:1") and not is_loopback_url("http://10.0.0.1")
    settings = _settings(allowed_origins=("https://admin.example",))
    assert settings.origins == {"https://app.example", "https://admin.example"}
    assert settings.redirect_uri == "https://app.example/bff/callback"


class _Request:
    def __init__(self, method: str, headers: dict[str, str]) -> None:
        self.method = method
        self.headers = headers


@pytest.mark.parametrize(("method", "headers", "ok"), [
    ("GET", {"x-tessera-bff": "1"}, True),
    ("GET", {"x-tessera-bff": "1", "origin": "https://app.example"}, True),
    ("POST", {"x-tessera-bff": "1", "origin": "https://app.example"}, True),
    ("POST", {"x-tessera-bff": "1"}, True),  # no Origin, no Sec-Fetch-Site: not a browser
    ("POST", {"x-tessera-bff": "1", "sec-fetch-site": "same-origin"}, True),
    ("GET", {}, False),
    ("GET", {"x-tessera-bff": "true"}, False),
    ("GET", {"x-tessera-bff": "1", "origin": "https://evil.example"}, False),
    ("GET", {"x-tessera-bff": "1", "origin": "null"}, False),
    ("GET", {"x-tessera-bff": "1", "origin": "garbage"}, False),
    ("GET", {"x-tessera-bff": "1", "origin": "https://[::1"}, False),
    ("POST", {"x-tessera-bff": "1", "sec-fetch-site": "same-site"}, False),
    ("POST", {"x-tessera-bff": "1", "sec-fetch-site": "cross-site"}, False),
    ("POST", {"x-tessera-bff": "1", "origin": "http://app.example"}, False),
])
def test_csrf_rule(method: str, headers: dict[str, str], ok: bool) -> None:
    from tessera.bff.app import CsrfRefused

    request: Any = _Request(method, headers)
    if ok:
        check_csrf(request, _settings())
    else:
        with pytest.raises(CsrfRefused):
            check_csrf(request, _settings())
