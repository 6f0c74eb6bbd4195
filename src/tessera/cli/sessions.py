"""``tessera sessions bump|revoke``: version bumps and revocation from the shell."""

from __future__ import annotations

import click

from tessera.cli._common import echo_json, fail, run_with_identity
from tessera.identity import admin
from tessera.identity.compose import Identity

__all__ = ["sessions"]


@click.group()
def sessions() -> None:
    """Sessions."""


def _target(sid: str | None, user_id: str | None) -> dict[str, str | None]:
    return {"sid": sid, "user_id": user_id}


@sessions.command()
@click.option("--sid", default=None)
@click.option("--user-id", default=None)
@click.option("--reason", default="admin")
def bump(sid: str | None, user_id: str | None, reason: str) -> None:
    """Bump the session version (role change, password reset): older tokens go stale."""

    async def work(identity: Identity) -> int:
        return await admin.bump_version(identity, **_target(sid, user_id), reason=reason,
                                        actor="cli")
    try:
        echo_json({"sessions": run_with_identity(work)})
    except admin.AdminError as exc:
        fail(str(exc))


@sessions.command()
@click.option("--sid", default=None)
@click.option("--user-id", default=None)
@click.option("--reason", default="admin")
def revoke(sid: str | None, user_id: str | None, reason: str) -> None:
    """End a session, or all of a user's sessions."""

    async def work(identity: Identity) -> int:
        return await admin.revoke(identity, **_target(sid, user_id), reason=reason,
                                  actor="cli")
    try:
        echo_json({"sessions": run_with_identity(work)})
    except admin.AdminError as exc:
        fail(str(exc))
