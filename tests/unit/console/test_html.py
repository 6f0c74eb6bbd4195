"""Console pages: autoescaped templates, quoted attributes, the CSP's style hash, UTC
times, exported names."""

from __future__ import annotations

import base64
import hashlib
import re

import tessera.console
from tessera.console.html import PAGE_HEADERS, render, url, when
from tessera.console.views import error_view, forbidden_view, login_view


def test_exported_names() -> None:
    assert sorted(tessera.console.__all__) == ["ConsoleEndpoints", "console_routes"]


def test_values_are_escaped_and_attributes_quoted() -> None:
    html = login_view("/console", csrf="c'><script>", next_path="/console/x?a=1&b=<2>",
                      message="<b>hi</b>", error="it's \"bad\"", username="' onfocus='x",
                      tenant="t").decode()
    assert "<script>" not in html and "<b>hi</b>" not in html
    assert "&lt;b&gt;hi&lt;/b&gt;" in html
    assert "value='&#39; onfocus=&#39;x'" in html
    assert "name='csrf_token' value='c&#39;&gt;&lt;script&gt;'" in html
    assert "value='/console/x?a=1&amp;b=&lt;2&gt;'" in html
    assert "it&#39;s &#34;bad&#34;" in html
    assert "&lt;" in error_view(None, "<x>").decode()


def test_url_drops_empty_parameters() -> None:
    assert url("/p", a="1", b="", c=None, d=False, e=0) == "/p?a=1&e=0"
    assert url("/p") == "/p"


def test_times_are_utc() -> None:
    assert when(0) == "1970-01-01 00:00:00"
    assert "—" in when(None)


def test_the_inline_style_is_the_one_the_csp_allows() -> None:
    for html in (forbidden_view("/console").decode(), render("error.html", message="x")
                 .decode()):
        style = re.search(r"<style>(.*?)</style>", html, re.S)
        assert style
        digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
        assert f"style-src 'sha256-{digest}'" in PAGE_HEADERS["content-security-policy"]
        assert "<script" not in html
