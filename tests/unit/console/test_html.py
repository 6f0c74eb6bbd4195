"""HTML helpers: escaping, quoting of attributes, the CSP's style hash, exported names."""

from __future__ import annotations

import base64
import hashlib
import re

import tessera.console
from tessera.console.html import PAGE_HEADERS, button_form, esc, link, page, url, when


def test_exported_names() -> None:
    assert sorted(tessera.console.__all__) == ["ConsoleEndpoints", "console_routes"]


def test_values_are_escaped_and_attributes_quoted() -> None:
    assert esc("<a href='x'>&\"") == "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;"
    assert esc(None) == ""
    assert link("/x?a=1&b=<2>", "t'") == "<a href='/x?a=1&amp;b=&lt;2&gt;'>t&#x27;</a>"
    form = button_form("/console/revoke", {"target": "' onfocus='x"}, csrf="c", label="<b>")
    assert "value='&#x27; onfocus=&#x27;x'" in form and "&lt;b&gt;" in form
    assert "name='csrf_token' value='c'" in form


def test_url_drops_empty_parameters() -> None:
    assert url("/p", a="1", b="", c=None, d=False, e=0) == "/p?a=1&e=0"
    assert url("/p") == "/p"


def test_times_are_utc() -> None:
    assert when(0) == "1970-01-01 00:00:00"
    assert "—" in when(None)


def test_the_inline_style_is_the_one_the_csp_allows() -> None:
    html = page("t", esc("x")).decode()
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in PAGE_HEADERS["content-security-policy"]
    assert "<script" not in html
