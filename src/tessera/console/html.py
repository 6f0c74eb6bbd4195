"""Rendering of the console's pages: Jinja2 templates in ``console/templates`` with
autoescaping on for every value, and the headers every page carries.

Pages load nothing from elsewhere: the one stylesheet (``templates/style.css``) is inline
and allowed by its hash in the Content-Security-Policy, which forbids scripts, frames and
foreign form targets.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, Final
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from tessera.store.ports import LEGACY_AUDIT_FIELDS

__all__ = ["PAGE_HEADERS", "render", "url", "when"]

_STYLE: Final = files("tessera.console").joinpath("templates/style.css").read_text().strip()
_STYLE_HASH: Final = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

PAGE_HEADERS: Final = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}


def when(at: float | None) -> str | Markup:
    """A time in UTC, to the second; a muted dash for none."""
    if at is None:
        return Markup("<span class=muted>—</span>")
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def url(path: str, **params: object) -> str:
    """``path`` with the non-empty ``params`` as its query (templates escape it)."""
    query = urlencode({k: str(v) for k, v in params.items()
                       if v is not None and v is not False and v != ""})
    return f"{path}?{query}" if query else path


def _cell(value: object) -> str:
    """A value in a cell: nothing for none, lists space-separated."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(map(str, value))
    return str(value)


def _field(fields: Mapping[str, Any], name: str) -> Any:
    """An audit or decision field by its vocabulary name (``user_id``, ``tenant_id``,
    ``client_id``), or by the older name that records written before carry."""
    value = fields.get(name)
    if value is None and name in LEGACY_AUDIT_FIELDS:
        value = fields.get(LEGACY_AUDIT_FIELDS[name])
    return value


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


_ENV: Final = Environment(loader=PackageLoader("tessera.console", "templates"),
                          autoescape=select_autoescape(default=True,
                                                       default_for_string=True),
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters.update(when=when, cell=_cell, clip=_clip)
_ENV.globals.update(url=url, field=_field, style=Markup(_STYLE))  # noqa: S704 - our own stylesheet file


def render(template: str, **context: Any) -> bytes:
    context.setdefault("ctx", None)
    context.setdefault("title", "Tessera console")
    return _ENV.get_template(template).render(**context).encode()
