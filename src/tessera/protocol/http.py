"""Neutral request/response values and strict form parsing.

RFC 6749 §3.1/§3.2: parameters sent without a value are treated as omitted, and request
and response parameters MUST NOT be included more than once. Appendix A: no parameter
allows control characters other than TAB, so NUL, CR, LF and friends are refused before
they reach a log line or a database (PostgreSQL rejects NUL in text outright).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tessera.protocol.errors import InvalidRequest, OAuthError

__all__ = ["FORM_CONTENT_TYPE", "OAuthRequest", "OAuthResponse", "Params", "error_response",
           "has_control_chars", "json_response", "parse_params"]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
_MAX_PARAMS = 64
_MAX_VALUE = 8192
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_URL_CREDENTIALS = ("client_secret", "code", "code_verifier", "refresh_token", "password",
                    "token", "access_token", "id_token", "client_assertion", "assertion",
                    "subject_token", "actor_token")
"""Parameters that carry a secret: refused in the query string of a POST (DESIGN §9, no
tokens in URLs; RFC 6750 §2.3 and RFC 9700 §4.3.2 on credentials in URIs)."""
_UNSAFE_HEADER_TEXT = re.compile(r'[^\x20-\x7e]|["\\]')
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,40}")


def has_control_chars(text: str) -> bool:
    """True if ``text`` holds a character no OAuth parameter allows (RFC 6749 App. A)."""
    # every character the pattern finds is unprintable: most values skip the regex
    return not text.isprintable() and _CONTROL.search(text) is not None


def _named(name: str) -> str:
    """A parameter name fit for ``error_description`` (RFC 6749 §5.2: printable ASCII
    without quotes or backslash), or nothing if the client sent something else."""
    return f"parameter {name}" if _PLAIN_NAME.fullmatch(name) else "a parameter"


@dataclass(frozen=True, slots=True)
class OAuthRequest:
    """What an endpoint needs of an HTTP request. Header names are lower-case."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    query: str = ""
    client_host: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    client_cert: str | None = None
    """The leaf client certificate (PEM) of a mutual-TLS connection (RFC 8705), as the
    server or a trusted proxy presented it (``tessera.tls_scope``)."""


@dataclass(slots=True)
class OAuthResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    body: bytes | None = None
    """Raw body (HTML pages); ``json`` is used when this is None."""


def json_response(payload: Any, *, status: int = 200, no_store: bool = True) -> OAuthResponse:
    headers = dict(_NO_STORE) if no_store else {}
    return OAuthResponse(status=status, headers=headers, json=payload)


def error_response(error: OAuthError) -> OAuthResponse:
    """RFC 6749 §5.2 JSON error with ``Cache-Control: no-store``."""
    response = json_response(error.body(), status=error.status)
    if error.status == 401:
        # invalid_client: the client authentication scheme we offer (RFC 6749 §5.2);
        # anything else at 401 is a resource-server answer (RFC 6750 §3).
        scheme = 'Basic realm="tessera"' if error.error == "invalid_client" else "Bearer"
        if error.error == "invalid_token":
            # RFC 6750 §3: the description is a quoted-string of printable ASCII.
            description = _UNSAFE_HEADER_TEXT.sub("", error.description)
            scheme = f'Bearer error="invalid_token", error_description="{description}"'
        response.headers["www-authenticate"] = scheme
    response.headers.update(error.headers())
    return response


class Params:
    """Single-valued parameters. Empty values count as absent (RFC 6749 §3.1)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        if len(pairs) > _MAX_PARAMS:
            raise InvalidRequest("too many parameters")
        values: dict[str, str] = {}
        for name, value in pairs:
            if len(value) > _MAX_VALUE or len(name) > _MAX_VALUE:
                raise InvalidRequest(f"{_named(name)} is too long")
            if has_control_chars(name) or has_control_chars(value):
                raise InvalidRequest("parameters must not contain control characters")
            if value == "":
                continue
            if name in values:
                raise InvalidRequest(f"{_named(name)} is repeated")
            values[name] = value
        self._values = values

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def require(self, name: str) -> str:
        value = self._values.get(name)
        if value is None:
            raise InvalidRequest(f"missing {_named(name)}")
        return value

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def as_dict(self) -> dict[str, str]:
        return dict(self._values)


def _parse_qs(raw: str) -> list[tuple[str, str]]:
    """``parse_qsl(raw, keep_blank_values=True, max_num_fields=_MAX_PARAMS,
    errors="strict")``, decoding only the pairs that need it (most carry neither ``%``
    nor ``+``: a JWT, a grant type, a scope)."""
    if raw.count("&") >= _MAX_PARAMS:
        raise InvalidRequest("malformed parameters")
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in part or "+" in part:
            try:
                name = unquote(name.replace("+", " "), errors="strict")
                value = unquote(value.replace("+", " "), errors="strict")
            except UnicodeDecodeError:
                raise InvalidRequest("malformed parameters") from None
        pairs.append((name, value))
    return pairs


def parse_params(request: OAuthRequest, *, max_body: int, allow_query: bool = False) -> Params:
    """Parameters of a form POST (or a GET query when ``allow_query``)."""
    if request.method == "GET" and allow_query:
        return Params(_parse_qs(request.query))
    if request.method != "POST":
        raise InvalidRequest("use POST")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_CONTENT_TYPE:
        raise InvalidRequest(f"content type must be {FORM_CONTENT_TYPE}")
    if len(request.body) > max_body:
        raise InvalidRequest("request body too large")
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not UTF-8") from None
    if request.query:
        query = Params(_parse_qs(request.query))
        if any(name in query for name in _URL_CREDENTIALS):
            raise InvalidRequest("credentials must not be sent in the URL")
    return Params(_parse_qs(text))
