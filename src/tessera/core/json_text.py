"""Compact JSON text, byte for byte what ``json.dumps`` writes, at orjson's speed.

Two hot paths need ``json.dumps``'s exact bytes: the audit chain's canonical form (old
chains must keep verifying) and an access token's payload (``jwt.encode``'s bytes).
``json.dumps`` with these arguments builds an encoder per call: ~6–8 µs for a token's
claims here against ~1 µs for orjson. orjson writes the same bytes for every document
made of strings, 64-bit ints, booleans, ``None``, lists, tuples, dicts with ``str`` keys
and floats in decimal form (1e-4 ≤ |x| < 1e16, or 0) — unless a string holds a non-ASCII
character or DEL, which ``json`` escapes. Anything else takes ``json.dumps`` itself;
the equality is held by tests over 180,000 floats and the string edge cases.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

__all__ = ["compact_json"]


def compact_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """``json.dumps(value, separators=(",", ":"), sort_keys=sort_keys,
    ensure_ascii=True, allow_nan=False)`` as ASCII bytes (raises as it does)."""
    if _orjson_writes_the_same(value):
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None)
        if text.isascii() and b"\x7f" not in text:
            return text
    return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys,
                      ensure_ascii=True, allow_nan=False).encode("ascii")


_LEAVES: Final = frozenset({str, bool, type(None)})


def _orjson_writes_the_same(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind in _LEAVES:
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str:
                    return False
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
        elif kind is int:
            if not -(2**63) <= item < 2**64:
                return False
        elif kind is float:
            if not (item == 0.0 or 1e-4 <= abs(item) < 1e16):  # NaN, infinities: False
                return False
        else:
            return False
    return True
