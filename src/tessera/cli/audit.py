"""``tessera audit tail|trace|verify``: read the audit trail and prove it untouched.

Each reads the whole trail in batches; from ``SCAN_PROGRESS_FROM`` rows on, a progress
bar on standard error shows how far (the output on standard output stays clean)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import click

from tessera.cli._common import echo_json, run_with_identity
from tessera.cli._table import bulk_progress
from tessera.core.audit_chain import find_breaks
from tessera.identity.compose import Identity
from tessera.store.ports import AuditFilter, StoredAudit

__all__ = ["audit"]

_TRACE_FIELDS = ("correlation_id", "token_hash", "new_token_hash", "subject_token_hash",
                 "jti", "sid", "sid_hash", "family_id", "user_id", "subject")


SCAN_PROGRESS_FROM = 20_000
"""Rows from which a scan of the audit trail shows a progress bar."""


async def _rows(identity: Identity, label: str) -> AsyncIterator[StoredAudit]:
    """Every row, oldest first, in batches; the bar counts row ids up to the newest id
    when the scan began (ids are the append order, so that is the row count)."""
    async with identity.store.unit_of_work(read_only=True) as uow:
        newest = await uow.audit.search(AuditFilter(), limit=1)
    total = newest[0].id if newest else 0
    with bulk_progress(total, label, at_least=SCAN_PROGRESS_FROM) as advance:
        after = 0
        while True:
            async with identity.store.unit_of_work(read_only=True) as uow:
                batch = await uow.audit.scan(after_id=after, limit=2000)
            if not batch:
                return
            for row in batch:
                yield row
            if advance is not None:
                advance(min(batch[-1].id, total) - min(after, total))
            after = batch[-1].id


def _line(row: StoredAudit) -> dict[str, Any]:
    return {"id": row.id, "event": row.record.event, "at": row.record.at,
            **row.record.fields}


def _print_table(rows: list[StoredAudit]) -> None:
    for row in rows:
        when = datetime.fromtimestamp(row.record.at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        details = " ".join(f"{k}={v}" for k, v in row.record.fields.items()
                           if k not in ("token_hash", "new_token_hash"))
        click.echo(f"{row.id:>7}  {when}  {row.record.event:<24} {details}")


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command()
@click.option("-n", "--lines", default=20, show_default=True)
@click.option("--event", default=None, help="Only this event name.")
@click.option("--json", "as_json", is_flag=True)
def tail(lines: int, event: str | None, as_json: bool) -> None:
    """The newest events, oldest first."""

    async def work(identity: Identity) -> list[StoredAudit]:
        kept: list[StoredAudit] = []
        async for row in _rows(identity, "reading the audit trail"):
            if event is None or row.record.event == event:
                kept.append(row)
                del kept[:-lines]
        return kept

    rows = run_with_identity(work)
    echo_json([_line(r) for r in rows]) if as_json else _print_table(rows)


@audit.command()
@click.argument("needle")
@click.option("--json", "as_json", is_flag=True)
def trace(needle: str, as_json: bool) -> None:
    """Every event that names NEEDLE (a correlation id, token hash, jti, sid, family id or
    user id), in order: a token's journey through issue, exchange, allow, deny, revoke."""

    async def work(identity: Identity) -> list[StoredAudit]:
        return [row async for row in _rows(identity, f"searching for {needle}")
                if any(row.record.fields.get(f) == needle for f in _TRACE_FIELDS)]

    rows = run_with_identity(work)
    if as_json:
        echo_json([_line(r) for r in rows])
    elif not rows:
        click.echo(f"no audit events name {needle}")
    else:
        _print_table(rows)


@audit.command()
def verify() -> None:
    """Recompute the hash chain; exit 1 and name the rows if any was edited or deleted."""

    async def work(identity: Identity) -> tuple[int, list[Any], str]:
        rows = [(r.id, r.record.event, r.record.at, r.record.fields, r.chain_hash)
                async for r in _rows(identity, "verifying the hash chain")]
        breaks, head = find_breaks(rows)
        return len(rows), breaks, head

    count, breaks, head = run_with_identity(work)
    if breaks:
        for b in breaks:
            click.echo(f"row {b.row_id}: {b.reason}", err=True)
        click.echo(f"audit chain BROKEN: {len(breaks)} problem(s) in {count} rows", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {count} rows, head {head}")
