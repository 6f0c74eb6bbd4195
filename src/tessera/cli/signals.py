"""``tessera signals ls|retry``: outbound back-channel logout and SSF deliveries — what
was delivered, what waits for a retry, and the dead-letter list (docs/signals.md)."""

from __future__ import annotations

from typing import Any

import click

from tessera.cli._common import echo_json, fail, run_with_identity
from tessera.cli._table import echo_table, when
from tessera.identity.compose import Identity

__all__ = ["signals"]


@click.group()
def signals() -> None:
    """Outbound signals: back-channel logout tokens and SSF SETs."""


@signals.command("ls")
@click.option("--dead", is_flag=True, help="Only the dead-letter list.")
@click.option("--pending", is_flag=True, help="Only deliveries waiting for (a retry of) a push "
                                              "or a poll.")
@click.option("--tenant", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_signals(dead: bool, pending: bool, tenant: str | None, limit: int,
                 as_json: bool) -> None:
    """Recent deliveries, newest first: receiver, event, jti, status, attempts, error."""
    if dead and pending:
        fail("name at most one of --dead and --pending")
    status = "dead" if dead else "pending" if pending else None

    async def work(identity: Identity) -> list[dict[str, Any]]:
        async with identity.store.unit_of_work(read_only=True) as uow:
            found = await uow.signals.deliveries(status=status, tenant_id=tenant, limit=limit)
        return [{"id": d.id, "channel": d.channel, "receiver": d.target, "event": d.event,
                 "jti": d.jti, "status": d.status, "attempts": d.attempts,
                 "tenant_id": d.tenant_id, "user_id": d.user_id, "created_at": d.created_at,
                 "delivered_at": d.delivered_at, "last_error": d.last_error} for d in found]

    rows = run_with_identity(work)
    if as_json:
        echo_json(rows)
        return
    echo_table(("id", "channel", "receiver", "event", "status", "attempts", "created",
                "error"),
               [(r["id"], r["channel"], r["receiver"], r["event"], r["status"],
                 r["attempts"], when(r["created_at"]), r["last_error"] or "")
                for r in rows], empty="no deliveries")


@signals.command("retry")
@click.argument("delivery_id", type=int)
def retry(delivery_id: int) -> None:
    """Put a dead letter back in the queue: the same token (same jti) is pushed again."""

    async def work(identity: Identity) -> bool:
        async with identity.store.unit_of_work() as uow:
            return await uow.signals.requeue(delivery_id, at=identity.clock.now())

    if not run_with_identity(work):
        fail(f"no dead letter {delivery_id}")
    echo_json({"id": delivery_id, "status": "pending"})
