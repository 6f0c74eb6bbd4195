"""HTML building blocks of the console.

Every value that reaches a page goes through ``esc`` (``html.escape`` with quotes);
helpers that return markup say so by taking markup (``Html``) where they accept it. Pages
load nothing from elsewhere: the one stylesheet is inline and allowed by its hash in the
Content-Security-Policy, which forbids scripts, frames and foreign form targets.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import NewType
from urllib.parse import urlencode

__all__ = ["PAGE_HEADERS", "Html", "button_form", "esc", "get_form", "hidden", "link",
           "page", "table", "url", "when"]

Html = NewType("Html", str)
"""Markup that is safe to insert as is (built by these helpers from escaped values)."""

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}"
    "header{background:#1d2330;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;"
    "align-items:center;flex-wrap:wrap}header a{color:#cfe0ff;text-decoration:none}"
    "header .who{margin-left:auto;font-size:.85rem;color:#bbb}"
    "header form{display:inline}main{padding:1.2rem;max-width:80rem}"
    "h1{font-size:1.35rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.4rem 0 .6rem}"
    "table{border-collapse:collapse;width:100%;background:#fff;font-size:.85rem}"
    "th,td{border-bottom:1px solid #e3e5ea;padding:.35rem .5rem;text-align:left;"
    "vertical-align:top}th{background:#eef0f4}td.mono,span.mono{font-family:monospace;"
    "word-break:break-all}form.filters{display:flex;gap:.6rem;flex-wrap:wrap;"
    "align-items:end;margin-bottom:1rem}form.filters label{display:flex;flex-direction:"
    "column;font-size:.8rem}form.inline{display:inline}input,select{padding:.3rem}"
    "button{padding:.35rem .8rem;border:0;border-radius:5px;background:#2d5bd7;color:#fff;"
    "cursor:pointer}button.danger{background:#b00020}.notice{background:#e6f4ea;"
    "border:1px solid #9bd3ae;padding:.6rem;margin-bottom:1rem}.error{color:#b00020}"
    ".muted{color:#666}.denied{color:#b00020;font-weight:600}.allowed{color:#1b7a3a}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.3rem 1rem}dt{color:#555}"
    "dd{margin:0}.box{background:#fff;padding:1rem 1.4rem;border-radius:8px;"
    "max-width:30rem}.box label{display:block;margin:.7rem 0 .2rem}.box input{width:100%;"
    "box-sizing:border-box}.pager{margin-top:.8rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

PAGE_HEADERS = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}


def esc(value: object) -> Html:
    return Html(escape("" if value is None else str(value), quote=True))


def when(at: float | None) -> Html:
    """A time in UTC, to the second."""
    if at is None:
        return Html("<span class=muted>—</span>")
    return esc(datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S"))


def url(path: str, **params: object) -> str:
    """``path`` with the non-empty ``params`` as its query (not escaped for HTML yet)."""
    query = urlencode({k: str(v) for k, v in params.items()
                       if v is not None and v is not False and v != ""})
    return f"{path}?{query}" if query else path


def link(href: str, text: object, *, cls: str | None = None) -> Html:
    attr = f" class='{esc(cls)}'" if cls else ""
    return Html(f"<a href='{esc(href)}'{attr}>{esc(text)}</a>")


def hidden(name: str, value: object) -> Html:
    return Html(f"<input type=hidden name='{esc(name)}' value='{esc(value)}'>")


def button_form(action: str, fields: Mapping[str, object], *, csrf: str, label: str,
                danger: bool = False, name: str | None = None) -> Html:
    """A POST form of hidden fields and one button, carrying the CSRF token."""
    inputs = "".join(hidden(k, v) for k, v in fields.items())
    cls = " class=danger" if danger else ""
    test_name = f" name='{esc(name)}'" if name else ""
    return Html(f"<form class=inline method=post action='{esc(action)}'>{inputs}"
                f"{hidden('csrf_token', csrf)}<button type=submit{cls}{test_name}>"
                f"{esc(label)}</button></form>")


def get_form(action: str, controls: Iterable[Html], *, label: str = "Show") -> Html:
    """A read-only search form (GET: bookmarkable; it changes nothing, so it carries no
    CSRF token, which would otherwise end up in URLs and logs)."""
    return Html(f"<form class=filters method=get action='{esc(action)}'>{''.join(controls)}"
                f"<button type=submit>{esc(label)}</button></form>")


def table(headers: Sequence[str], rows: Iterable[Sequence[Html]], *,
          empty: str = "Nothing to show.") -> Html:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    if not body:
        return Html(f"<p class=muted>{esc(empty)}</p>")
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def page(title: str, body: Html, *, nav: Html | None = None) -> bytes:
    header = f"<header>{nav}</header>" if nav else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{esc(title)} · Tessera console</title><style>{_STYLE}</style></head>"
        f"<body>{header}<main>{body}</main></body></html>"
    ).encode()
