"""``tessera verifiers ls``: the identity service's registry of verifiers — who reports,
what it has applied, how far behind the outbox it is, who stopped reporting."""

from __future__ import annotations

from typing import Any

import click

from tessera.cli._common import echo_json, run_with_identity
from tessera.cli._table import echo_table, when
from tessera.identity.compose import Identity

__all__ = ["verifiers"]


@click.group()
def verifiers() -> None:
    """Verifiers reporting what they applied (logout completion)."""


@verifiers.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON.")
def list_verifiers(as_json: bool) -> None:
    """Every known verifier: live (reported within TESSERA_VERIFIERS__LIVE_SECONDS) or not,
    its applied seq and how many events it is behind the outbox."""

    async def work(identity: Identity) -> dict[str, Any]:
        now = identity.clock.now()
        live_since = now - identity.completion.live_seconds
        async with identity.store.unit_of_work(read_only=True) as uow:
            head = await uow.revocations.last_seq()
            known = await uow.verifiers.verifiers()
        return {"head": head, "verifiers": [{
            "verifier_id": v.verifier_id, "service": v.service, "client_id": v.client_id,
            "live": v.reported_at >= live_since, "cursor": v.cursor,
            "behind": max(0, head - v.cursor), "lag_seconds": v.lag,
            "last_report": v.reported_at, "first_seen": v.first_seen} for v in known]}

    result = run_with_identity(work)
    if as_json:
        echo_json(result)
        return
    rows = [(v["verifier_id"], v["service"], v["live"], v["cursor"], v["behind"],
             v["lag_seconds"], when(v["last_report"])) for v in result["verifiers"]]
    echo_table(("verifier", "service", "live", "applied", "behind", "lag s", "last report"),
               rows, empty="no verifier has reported")
    click.echo(f"outbox head: {result['head']}")
