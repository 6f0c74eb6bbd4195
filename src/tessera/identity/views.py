"""Server-rendered pages of the account and consent screens: Jinja2 templates in
``identity/templates`` with autoescaping on for every value, and the response headers
every page carries (no caching, no framing, no outside resources)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import Response

__all__ = ["PAGE_HEADERS", "allow_form_redirect", "page", "render"]

PAGE_HEADERS = {"cache-control": "no-store", "x-frame-options": "DENY",
                "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                           "form-action 'self'; frame-ancestors 'none'",
                # not no-referrer: browsers would then send "Origin: null" with our own
                # forms (Fetch §3.1), hiding that they are same-origin
                "referrer-policy": "same-origin"}
"""Headers of every page the identity service renders (login, account, consent)."""

_ENV = Environment(loader=PackageLoader("tessera.identity", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def allow_form_redirect(response: Response, url: str) -> Response:
    """Let this page's form lead on to ``url``'s origin: CSP ``form-action`` also governs
    the redirects that follow a submission (CSP3 §6.3.1; Chromium enforces it), so a login,
    second-factor or consent form whose answer is a 303 to the client's (already
    validated, registered) redirect URI on another origin needs that origin listed, or
    the browser stops on the form. Nothing else is loosened."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc \
            and not any(c in parts.netloc for c in " ;,'\""):
        origin = f"{parts.scheme}://{parts.netloc}"
        policy = response.headers["content-security-policy"]
        response.headers["content-security-policy"] = policy.replace(
            "form-action 'self'", f"form-action 'self' {origin}")
    return response


def render(template: str, **context: Any) -> bytes:
    return _ENV.get_template(template).render(**context).encode()


def page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render(template, **context), status_code=status, headers=PAGE_HEADERS,
                    media_type="text/html; charset=utf-8")
