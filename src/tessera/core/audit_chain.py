"""Tamper evidence for the audit trail: every row carries a hash chained to the one
before it, so editing or deleting a row breaks every hash after it.

``link = SHA-256(previous link ‖ canonical JSON of (event, at, fields))``, hex. The first
row chains to ``GENESIS``. Deleting the *newest* rows is not detectable from the table
alone; publish the head (``tessera audit verify`` prints it) somewhere else to anchor it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from tessera.core.json_text import compact_json

__all__ = ["GENESIS", "ChainBreak", "canonical", "chain_link", "find_breaks", "stored_fields"]

GENESIS = "0" * 64


def canonical(event: str, at: float, fields: dict[str, Any]) -> bytes:
    """The bytes a record contributes to its link (a store that extends the chain in SQL
    hashes the previous link's ASCII followed by these): ``json.dumps`` with sorted keys,
    no spaces, ASCII only, no NaN (``compact_json``)."""
    return compact_json([event, at, fields], sort_keys=True)


def stored_fields(fields: dict[str, Any]) -> str:
    """A record's fields as the audit table's JSON text (read back, they give the same
    canonical bytes)."""
    try:
        return orjson.dumps(fields).decode("utf-8")
    except TypeError:  # an int past 64 bits: json writes it
        return json.dumps(fields, allow_nan=False)


def chain_link(previous: str, event: str, at: float, fields: dict[str, Any]) -> str:
    return hashlib.sha256(previous.encode("ascii") + canonical(event, at, fields)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    row_id: int
    reason: str


def find_breaks(rows: Iterable[tuple[int, str, float, dict[str, Any], str | None]],
                *, previous: str = GENESIS) -> tuple[list[ChainBreak], str]:
    """Check rows (id, event, at, fields, link) in id order; returns the breaks and the
    last link (the head). Rows written before chaining existed (link None) are skipped
    only at the start of the table."""
    breaks: list[ChainBreak] = []
    chained = False
    for row_id, event, at, fields, link in rows:
        if link is None:
            if chained:
                breaks.append(ChainBreak(row_id, "unchained row after the chain began"))
            continue
        chained = True
        expected = chain_link(previous, event, at, fields)
        if link != expected:
            breaks.append(ChainBreak(row_id, "hash mismatch: row edited, or a row before "
                                             "it deleted"))
        previous = link
    return breaks, previous
