"""The ``htu`` comparison of RFC 9449 §4.3 (check 9): the proof's URI and the request's,
without query and fragment, after syntax-based and scheme-based normalisation (RFC 3986
§6.2.2, §6.2.3): lower-case scheme and host, no default port, percent-escapes in upper
case and unreserved characters decoded, dot segments removed, an empty path as ``/``."""

from __future__ import annotations

import functools
import re
from typing import Final
from urllib.parse import urlsplit

__all__ = ["MAX_HTU_LENGTH", "normalize_htu", "strip_query"]

MAX_HTU_LENGTH: Final = 4096
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_VISIBLE: Final = re.compile(r"[\x21-\x7e]+")


def strip_query(url: str) -> str:
    """``url`` without its query and fragment."""
    return url.partition("#")[0].partition("?")[0]


@functools.lru_cache(maxsize=1024)
def normalize_htu(uri: str) -> str:
    """The normalised ``scheme://host[:port]/path`` of an absolute http(s) URI; query and
    fragment dropped. ``ValueError`` for anything else (relative, userinfo, bad port,
    spaces or control characters, longer than ``MAX_HTU_LENGTH``). Memoised: a service
    sees the same few URIs over and over (exceptions are not cached)."""
    if len(uri) > MAX_HTU_LENGTH or not _VISIBLE.fullmatch(uri):
        raise ValueError("not a visible-ASCII URI of acceptable length")
    parts = urlsplit(strip_query(uri))
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("not an http(s) URI")
    if "@" in parts.netloc:
        raise ValueError("userinfo is not allowed")
    host = parts.hostname
    if not host:
        raise ValueError("no host")
    port = parts.port  # raises ValueError when not a valid port
    authority = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        authority += f":{port}"
    path = _remove_dot_segments(_ESCAPE.sub(_normal_escape, parts.path)) or "/"
    return f"{scheme}://{authority}{path}"


def _normal_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 for an absolute path (as in an http URI with an authority)."""
    if "." not in path:
        return path
    segments = path.split("/")
    out: list[str] = []
    for segment in segments:
        if segment == ".":
            continue
        if segment == "..":
            if len(out) > 1:
                out.pop()
            continue
        out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/".join(out)
