"""What every refusal must look like (RFC 6749 §5.2, RFC 6750 §3, DESIGN §9).

Shared by the e2e bad-input tests and the JWT attack corpus: one definition of "a clean
OAuth error", so a regression anywhere fails the same way.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

__all__ = ["assert_no_leak", "assert_oauth_error", "assert_refused_page"]

_ERROR_CODE = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]+$")
"""RFC 6749 §5.2: ``error`` is %x20-21 / %x23-5B / %x5D-7E."""
_INTERNALS = re.compile(
    r"Traceback|File \"|line \d+|\b[A-Z]\w*(Error|Exception)\b|\bjwt\.|PyJWT|sqlalchemy|"
    r"starlette|tessera\.|0x[0-9a-f]{6,}|<[a-z_.]+ object at")
"""Python exception text, module paths, reprs: never in a response."""


def assert_no_leak(response: httpx.Response, *secrets: str) -> None:
    """No stack trace, no Python exception text, and no secret echoed back."""
    text = response.text
    assert not _INTERNALS.search(text), f"internal detail leaked: {text[:300]!r}"
    for secret in secrets:
        if not secret:
            continue
        assert secret not in text, "the presented credential was echoed back"
        for part in secret.split("."):
            if len(part) >= 12:
                assert part not in text, "part of the presented credential was echoed back"


def assert_oauth_error(response: httpx.Response, status: int, error: str | None = None, *,
                       no_store: bool = True, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON error body with ``error`` (and at most ``error_description``), the status
    expected, ``Cache-Control: no-store`` where tokens are involved, and nothing internal."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) <= {"error", "error_description"} and "error" in body, body
    assert isinstance(body["error"], str) and _ERROR_CODE.match(body["error"]), body
    if error is not None:
        assert body["error"] == error, body
    description = body.get("error_description")
    if description is not None:
        assert isinstance(description, str) and _ERROR_CODE.match(description), body
        assert len(description) <= 200, body
    if no_store:
        assert response.headers.get("cache-control") == "no-store", response.headers
    assert_no_leak(response, *secrets)
    return body


def assert_refused_page(response: httpx.Response, status: int = 400) -> None:
    """Browser endpoints answer with an HTML page: a 4xx, not cached, never redirected."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert "location" not in response.headers
    assert response.headers.get("cache-control") == "no-store"
    assert_no_leak(response)
