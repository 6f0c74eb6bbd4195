"""Scope strings (RFC 6749 §3.3): space-delimited, case-sensitive, order-free."""

from __future__ import annotations

import re

__all__ = ["ScopeError", "format_scope", "narrow_scope", "parse_scope"]

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")


class ScopeError(ValueError):
    """A scope string is malformed or asks for more than is allowed."""


def parse_scope(value: str | None) -> frozenset[str]:
    if value is None or value == "":
        return frozenset()
    parts = value.split(" ")
    for part in parts:
        if not _SCOPE_TOKEN.match(part):
            raise ScopeError("scope contains an invalid scope-token")
    return frozenset(parts)


def format_scope(scopes: frozenset[str] | set[str]) -> str:
    return " ".join(sorted(scopes))


def narrow_scope(requested: frozenset[str], allowed: frozenset[str]) -> frozenset[str]:
    """The granted scope: the request if given (must be a subset), else all allowed."""
    if not requested:
        return allowed
    if not requested <= allowed:
        raise ScopeError("requested scope exceeds what is allowed")
    return requested
