"""Readable terminal output for operators: tables, key/value blocks, UTC times, progress bars.

Rendering is ``rich``'s; this module only decides how Tessera's values read in a cell.
Machine-readable output is ``--json`` (``_common.echo_json``); these are for people.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Final

import click
from rich.box import Box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

__all__ = ["PROGRESS_FROM", "bulk_progress", "echo_fields", "echo_table", "format_table",
           "progress", "when"]

PROGRESS_FROM: Final = 20
"""Bulk commands show a progress bar from this many items on (fewer finish at once)."""

_MAX_CELL: Final = 60
# a header, a rule of ASCII dashes under it, no other lines: greppable, diffable output
_HEADER_RULE: Final = Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


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
    return str(value).replace("\n", " ")


def _render(renderable: object) -> str:
    """Plain text, wide enough that no row wraps, trailing blanks trimmed."""
    console = Console(width=1000, record=True, highlight=False, file=io.StringIO())
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


def _echo(renderable: object) -> None:
    # a terminal gets rich's colours; a pipe gets the same layout as plain text
    if sys.stdout.isatty():
        Console(highlight=False).print(renderable)
    else:
        click.echo(_render(renderable))


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    cells = [[_cell(v) for v in row] for row in rows]
    table = Table(box=_HEADER_RULE, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                  header_style="bold")
    for i, header in enumerate(headers):
        numeric = any(_is_number(row[i]) for row in cells) and all(
            _is_number(row[i]) or row[i] == "-" for row in cells)
        table.add_column(header.upper(), justify="right" if numeric else "left",
                         max_width=_MAX_CELL, overflow="ellipsis", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    return table


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Columns as wide as their widest cell (at most 60 characters; ``--json`` has the
    full values), numbers right-aligned, a rule under the header."""
    return _render(_table(headers, rows))


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
               empty: str = "(none)") -> None:
    materialised = [list(r) for r in rows]
    if not materialised:
        click.echo(empty)
        return
    _echo(_table(headers, materialised))


def echo_fields(pairs: Iterable[tuple[str, object]]) -> None:
    """``key  value`` lines with the keys aligned."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for key, value in pairs:
        grid.add_row(key, _cell(value))
    _echo(grid)


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).lstrip("-").isdigit()


@contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for bulk commands; yields ``advance(n)``. The JSON or text
    result stays alone on stdout."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True),
                  transient=False) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def bulk_progress(total: int, label: str, *,
                  at_least: int = PROGRESS_FROM) -> Iterator[Callable[[int], None] | None]:
    """What every bulk command (revoke a tenant, suspend it, …) uses: ``progress`` when
    there are at least ``at_least`` items, else ``None`` (no bar for a handful). Pass
    what it yields as the operation's ``progress`` callback."""
    if total < at_least:
        yield None
        return
    with progress(total, label) as advance:
        yield advance
