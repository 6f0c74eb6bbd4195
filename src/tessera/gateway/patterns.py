"""Host and path patterns of the route policy, and matching a request against them.

Path patterns are compared segment by segment with the *normalised* request path
(percent-decoded once, dot segments resolved, repeated slashes merged; see
``tessera.gateway.request``)::

    /orders          exactly that path ("/orders/" is another path)
    /orders/*        one more non-empty segment: /orders/7, not /orders, /orders/ or /orders/7/x
    /orders/**       zero or more segments below: /orders, /orders/, /orders/7/items
    /tenants/*/bill  "*" may stand for any one segment; "**" only as the last segment

A wildcard is a whole segment: ``/orders*`` or ``/a/**/b`` are errors, not patterns.

Host patterns: ``*`` (any host, also none), ``api.example`` (exact) or ``*.example.com``
(any subdomain, not ``example.com`` itself). Hosts compare case-insensitively and without
the port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from tessera.gateway.request import HOST_NAME, IPV6_LITERAL

__all__ = ["HostPattern", "PathPattern", "PatternError"]

_BAD_PATH_CHARS: Final = re.compile(r"[\x00-\x20\x7f?#%\\]")


class PatternError(ValueError):
    """A host or path pattern is not valid; the message says why."""


@dataclass(frozen=True, slots=True)
class HostPattern:
    source: str
    _exact: str | None = field(default=None, repr=False, compare=False)
    _suffix: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        host = text.strip().lower()
        if host == "*":
            return cls("*")
        if host.startswith("*."):
            suffix = host[1:]
            if not HOST_NAME.fullmatch(suffix[1:]):
                raise PatternError(f"{text!r} is not '*', a host name or '*.<domain>'")
            return cls(host, _suffix=suffix)
        if host.rstrip(".") and (HOST_NAME.fullmatch(host.rstrip("."))
                                  or IPV6_LITERAL.fullmatch(host)):
            return cls(host, _exact=host.rstrip("."))
        raise PatternError(f"{text!r} is not '*', a host name or '*.<domain>' "
                           "(no scheme, port or path)")

    @property
    def is_any(self) -> bool:
        return self._exact is None and self._suffix is None

    def matches(self, host: str) -> bool:
        """``host`` is normalised (lower case, no port, no trailing dot)."""
        if self._exact is not None:
            return host == self._exact
        if self._suffix is not None:
            return host.endswith(self._suffix) and len(host) > len(self._suffix)
        return True


@dataclass(frozen=True, slots=True)
class PathPattern:
    source: str
    _segments: tuple[str, ...] = field(repr=False, compare=False)
    """Segments before a final ``**`` (``*`` entries are one-segment wildcards)."""
    _rest: bool = field(repr=False, compare=False)
    """Ends in ``**``: any number of further segments."""
    _exact: str | None = field(repr=False, compare=False)
    """The path itself when there is no wildcard (one string comparison)."""

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        if not text.startswith("/"):
            raise PatternError(f"{text!r} must start with '/'")
        if _BAD_PATH_CHARS.search(text):
            raise PatternError(f"{text!r} may not contain spaces, control characters, "
                               "'?', '#', '%' or '\\' (patterns match the decoded path)")
        segments = text[1:].split("/")
        rest = segments[-1] == "**"
        if rest:
            segments.pop()
        for i, segment in enumerate(segments):
            if segment == "**":
                raise PatternError(f"{text!r}: '**' may only be the last segment")
            if segment != "*" and "*" in segment:
                raise PatternError(f"{text!r}: a wildcard must be a whole segment "
                                   "('*' or '**')")
            if segment in (".", ".."):
                raise PatternError(f"{text!r}: '.' and '..' segments never match a "
                                   "normalised path")
            if segment == "" and (i < len(segments) - 1 or rest):
                raise PatternError(f"{text!r}: empty segment ('//') never matches a "
                                   "normalised path")
        wild = rest or "*" in segments
        return cls(text, tuple(segments), rest, None if wild else text)

    def matches(self, path: str) -> bool:
        """``path`` is normalised and starts with ``/``."""
        if self._exact is not None:
            return path == self._exact
        parts = path[1:].split("/")
        wanted = self._segments
        too_short = len(parts) < len(wanted)
        if too_short or (not self._rest and len(parts) != len(wanted)):
            return False
        for want, got in zip(wanted, parts, strict=False):
            if want == "*":
                if not got:
                    return False
            elif want != got:
                return False
        return True
