"""Readable terminal output for operators: aligned tables, key/value blocks, UTC times.

Machine-readable output is ``--json`` (``_common.echo_json``); these are for people.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import click

__all__ = ["echo_fields", "echo_table", "format_table", "when"]

_MAX_CELL = 60


def when(ts: float | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SSZ`` (UTC); ``-`` for none."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(sorted(str(v) for v in value)) or "-"
    text = str(value).replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[:_MAX_CELL - 1] + "…"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Columns padded to their widest cell, numbers right-aligned, a rule under the
    header. Long cells are cut at 60 characters (use ``--json`` for full values)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    right = [any(_is_number(row[i]) for row in cells)
             and all(_is_number(row[i]) or row[i] == "-" for row in cells)
             for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right,
                                                                      strict=True)]
        return "  ".join(parts).rstrip()

    out = [line([h.upper() for h in headers]), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).lstrip("-").isdigit()


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
               empty: str = "(none)") -> None:
    materialised = [list(r) for r in rows]
    if not materialised:
        click.echo(empty)
        return
    click.echo(format_table(headers, materialised))


def echo_fields(pairs: Iterable[tuple[str, object]]) -> None:
    """``key  value`` lines with the keys aligned."""
    items = [(k, _cell(v)) for k, v in pairs]
    width = max((len(k) for k, _ in items), default=0)
    for key, value in items:
        click.echo(f"{key.ljust(width)}  {value}")
