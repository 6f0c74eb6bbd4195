"""The original request, as the proxy describes it to the decision endpoint.

==========  =============================  ===============================  ===================
proxy       endpoint                       method                           URI · host
==========  =============================  ===============================  ===================
nginx       ``/forward-auth``              ``X-Original-Method``            ``X-Original-URI`` ·
            (``auth_request``)                                              ``X-Forwarded-Host``,
                                                                            else ``Host``
Traefik     ``/forward-auth``              ``X-Forwarded-Method``           ``X-Forwarded-Uri`` ·
            (``forwardAuth``)                                               ``X-Forwarded-Host``
Envoy       ``/ext-authz/<path>``          the check request's own method   the check request's
            (``ext_authz``, HTTP service)                                   path minus
                                                                            ``/ext-authz`` ·
                                                                            ``Host`` (authority)
==========  =============================  ===============================  ===================

On ``/forward-auth`` without a method header the check request's own method is used.
When both the nginx and the Traefik header of one item are present (a client can send
either, and a proxy forwards what it does not overwrite) they must agree, or the request
is refused: a forged ``X-Original-URI`` can never pick a laxer rule than the real one.
The proxy must *set* (never pass through) the headers it is configured to send, in
particular ``X-Forwarded-Host``.

What a rule is matched against is the path exactly as every back end will see it, or
nothing: the query is dropped, an absolute-form URI keeps only its path, the path is
percent-decoded once (UTF-8), and anything that a back end could resolve to another path
than the gateway judged is refused with ``BadRequest`` (400) instead of being "fixed":

- ``.`` and ``..`` segments, raw or encoded (``/a/../admin``, ``/a/%2e%2e/admin``): nginx
  resolves them, Starlette and most routers do not, so the two would disagree;
- ``;`` anywhere in the path, raw or ``%3B`` (``/orders/..;/admin``: Tomcat and Spring strip
  path parameters, and treat ``..;`` as ``..``);
- empty segments (``//admin``): merged by nginx, kept by others;
- any encoded ``.``, ``/``, ``\\``, ``;``, ``?``, ``#`` or ``%`` (``%2e``, ``%2F``,
  ``%5C``, ``%3B``, ``%3F``, ``%23``, ``%25``: a back end that decodes once more, or decodes
  before it splits, sees another path);
- ``\\``, ``#``, control characters, spaces or non-ASCII sent raw; encoded control
  characters; invalid UTF-8 (overlong forms such as ``%C0%AE``); decoded text that Unicode
  compatibility normalisation (NFKC) would change (``%EF%BC%8E`` is a full-width dot);
  segments with leading or trailing white space (Spring's ``trimTokens``) or a trailing dot
  (Windows, IIS);
- malformed or over-long URIs, unparseable hosts and methods.

Browsers and HTTP clients never send any of these for a real link (they resolve dot
segments and do not encode unreserved characters, RFC 3986 §2.3, §5.2.4).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote_to_bytes

from tessera.verifier import MAX_TOKEN_LENGTH, Denied, Reason
from tessera.verifier._bearer import bearer_token as sdk_bearer_token

__all__ = [
    "MAX_URI_LENGTH",
    "BadRequest",
    "OriginalRequest",
    "bearer_token",
    "ext_authz_request",
    "forward_auth_request",
    "normalize_host",
    "normalize_method",
    "normalize_path",
    "presented_token",
]

MAX_URI_LENGTH: Final = 8192
"""Longer original URIs are refused before any parsing."""

_RAW_BAD: Final = re.compile(r"[^\x21-\x7e]|[\\#]")
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_DELIMITER: Final = re.compile(r"%(?:2[eEfF35]|5[cC]|3[bBfF])")
"""``%2E . %2F / %23 # %25 % %5C \\ %3B ; %3F ?``: an encoded dot or delimiter."""
_DECODED_BAD: Final = re.compile(r"[\x00-\x1f\x7f]")
_DOT_SEGMENT: Final = frozenset({".", ".."})
_METHOD: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}")
_LABEL: Final = r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?"
HOST_NAME: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
"""A DNS name (lower case, no trailing dot); ``_`` tolerated as in real-world names."""
IPV6_LITERAL: Final = re.compile(r"\[[0-9a-f:.]{2,45}\]")
_PORT: Final = re.compile(r"[0-9]{1,5}")
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750 §2.1 ``b64token``."""

Headers = Mapping[str, Sequence[str]]
"""Lower-case header name → every value received (in order)."""


class BadRequest(ValueError):
    """The proxy's description of the original request cannot be used.

    The message is safe to send (it never echoes the input)."""

    @property
    def description(self) -> str:
        return str(self)


@dataclass(frozen=True, slots=True)
class OriginalRequest:
    """What a route rule is matched against (every field normalised)."""

    method: str
    """Upper case."""
    host: str
    """Lower case, without port or trailing dot; ``""`` when the proxy sent none."""
    path: str
    """Percent-decoded once; starts with ``/``; no dot or empty segments (refused)."""
    url: str = field(default="", compare=False)
    """The URI as the client addressed it, for a DPoP proof's ``htu`` (RFC 9449 §4.3):
    ``X-Forwarded-Proto`` (default ``https``), the host header as sent (port kept), the
    original URI as sent; ``""`` without a host."""


def forward_auth_request(headers: Headers, *, method: str) -> OriginalRequest:
    """nginx ``auth_request`` and Traefik ``forwardAuth`` (see the module table)."""
    uris = [*headers.get("x-original-uri", ()), *headers.get("x-forwarded-uri", ())]
    if not uris:
        raise BadRequest("X-Original-URI (nginx) or X-Forwarded-Uri (Traefik) is required.")
    paths = {normalize_path(uri) for uri in uris}
    if len(paths) != 1:
        raise BadRequest("The original URI headers disagree.")
    methods = {normalize_method(m) for m in (*headers.get("x-original-method", ()),
                                             *headers.get("x-forwarded-method", ()))}
    if len(methods) > 1:
        raise BadRequest("The original method headers disagree.")
    forwarded = headers.get("x-forwarded-host")
    raw_host = forwarded[0] if forwarded else _first(headers, "host")
    host = normalize_host(raw_host)
    return OriginalRequest(methods.pop() if methods else normalize_method(method), host,
                           paths.pop(), _client_url(headers, raw_host, uris[0]))


def ext_authz_request(path: str, *, method: str, headers: Headers) -> OriginalRequest:
    """Envoy ``ext_authz`` (HTTP service): ``path`` is the check request's raw path with
    the ``path_prefix`` removed (query included or not)."""
    raw_host = _first(headers, "host")
    return OriginalRequest(normalize_method(method), normalize_host(raw_host),
                           normalize_path(path or "/"), _client_url(headers, raw_host, path or "/"))


def _client_url(headers: Headers, raw_host: str | None, uri: str) -> str:
    """``OriginalRequest.url``; ``uri`` already passed ``normalize_path``."""
    host = (raw_host or "").partition(",")[0].strip()
    proto = (_first(headers, "x-forwarded-proto") or "https").partition(",")[0].strip().lower()
    if not host or proto not in ("http", "https"):
        return ""
    target = uri.partition("#")[0].partition("?")[0]
    return f"{proto}://{host}{target if target.startswith('/') else _path_of_absolute(target)}"


def presented_token(authorizations: Sequence[str]) -> tuple[str, str]:
    """``("bearer", token)`` or, for ``Authorization: DPoP <token>`` (RFC 9449 §7.1, the
    same token syntax and bounds), ``("dpop", token)``; refusals as ``bearer_token``."""
    if len(authorizations) == 1:
        scheme, _, rest = authorizations[0].strip().partition(" ")
        if scheme.lower() == "dpop":
            return "dpop", bearer_token(["Bearer " + rest])
    return "bearer", bearer_token(authorizations)


def bearer_token(authorizations: Sequence[str]) -> str:
    """The token of the one ``Authorization: Bearer <token>`` header (RFC 6750 §2.1).

    ``MissingToken`` without one (or with another scheme); ``Denied(malformed)`` for two
    headers, or as the SDK's ``bearer_token`` judges the one value.
    """
    if len(authorizations) > 1:
        raise Denied(Reason.MALFORMED, "more than one Authorization header")
    value = authorizations[0] if authorizations else None
    if value is not None and len(value) > MAX_TOKEN_LENGTH + 16:
        raise Denied(Reason.MALFORMED, "token too long")
    return sdk_bearer_token(value)


def normalize_method(value: str) -> str:
    if not _METHOD.fullmatch(value):
        raise BadRequest("The original method is not an HTTP method.")
    return value.upper()


def normalize_host(value: str | None) -> str:
    """First item of a (possibly comma-separated) host header, lower case, no port."""
    if value is None:
        return ""
    host = value.partition(",")[0].strip().lower()
    if not host:
        return ""
    if host.startswith("["):
        end = host.find("]") + 1
        name, port = host[:end], host[end:]
        valid = end > 0 and bool(IPV6_LITERAL.fullmatch(name))
    else:
        name, colon, port_digits = host.partition(":")
        port = colon + port_digits
        name = name.rstrip(".")
        valid = bool(name) and bool(HOST_NAME.fullmatch(name))
    if not valid or (port and not _PORT.fullmatch(port[1:])):
        raise BadRequest("The original host is not a valid host name.")
    return name


def normalize_path(uri: str) -> str:
    """The decoded path a rule is matched against (see the module docstring);
    ``BadRequest`` for anything a back end could read as another path."""
    if not uri:
        raise BadRequest("The original URI is empty.")
    if len(uri) > MAX_URI_LENGTH:
        raise BadRequest("The original URI is too long.")
    if _RAW_BAD.search(uri):
        raise BadRequest("The original URI contains characters that are not allowed.")
    target = uri.partition("?")[0]
    if not target.startswith("/"):
        target = _path_of_absolute(target)
    if ";" in target:
        raise BadRequest("The original URI has path parameters (';').")
    if "%" in target:
        target = _decode(target)
    _check_segments(target)
    return target


def _check_segments(path: str) -> None:
    segments = path[1:].split("/")
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment in _DOT_SEGMENT:
            raise BadRequest("The original URI has a '.' or '..' segment.")
        if not segment and i != last:
            raise BadRequest("The original URI has an empty segment ('//').")
        if segment and (segment != segment.strip() or segment.endswith(".")):
            raise BadRequest("The original URI has a segment ending in a dot or white space.")


def _path_of_absolute(target: str) -> str:
    scheme, sep, rest = target.partition("://")
    if not sep or not scheme.isalpha() or scheme.lower() not in ("http", "https"):
        raise BadRequest("The original URI must be a path starting with '/'.")
    slash = rest.find("/")
    return "/" if slash < 0 else rest[slash:]


def _decode(target: str) -> str:
    if _BAD_ESCAPE.search(target):
        raise BadRequest("The original URI has a malformed percent-encoding.")
    if _ENCODED_DELIMITER.search(target):
        raise BadRequest("The original URI encodes a dot or a delimiter.")
    try:
        decoded = unquote_to_bytes(target).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The original URI is not UTF-8.") from None
    if _DECODED_BAD.search(decoded):
        raise BadRequest("The original URI encodes a control character.")
    if not decoded.isascii() and unicodedata.normalize("NFKC", decoded) != decoded:
        raise BadRequest("The original URI has characters that normalise to others.")
    return decoded


def _first(headers: Headers, name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None
