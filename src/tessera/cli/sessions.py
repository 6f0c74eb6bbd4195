"""``tessera sessions ls|show|revoke|bump``: find sessions, look inside one, end or bump them.

Tables by default, ``--json`` for scripts. Bulk revocation (a user, a family, a tenant)
is ``tessera revoke`` (``cli/revoke.py``).
"""

from __future__ import annotations

from typing import Any

import click

from tessera.application import admin
from tessera.cli._common import echo_json, fail, identifier, run_with_identity
from tessera.cli._table import echo_fields, echo_table, when
from tessera.core.refresh import RefreshFamily
from tessera.core.sessions import Session
from tessera.core.users import User
from tessera.identity.compose import Identity
from tessera.store.ports import StoreError, UnitOfWork

__all__ = ["family_view", "resolve_users", "session_view", "sessions"]


def session_view(session: Session, user: User | None = None) -> dict[str, Any]:
    """A session as JSON (times are epoch seconds)."""
    return {
        "sid": session.sid, "user_id": session.user_id,
        "username": user.username if user else None, "tenant_id": session.tenant_id,
        "sv": session.sv, "acr": session.acr, "amr": list(session.amr),
        "auth_time": session.auth_time, "created_at": session.created_at,
        "last_seen_at": session.last_seen_at, "active": session.active,
        "revoked_at": session.revoked_at, "revoke_reason": session.revoke_reason,
        "user_agent": session.user_agent, "client_address": session.client_address,
        "kind": "device" if session.device_client_id else "browser",
        "device_client_id": session.device_client_id,
    }


def family_view(family: RefreshFamily, last_refreshed: float | None) -> dict[str, Any]:
    return {
        "family_id": family.family_id, "sid": family.sid, "client_id": family.client_id,
        "scope": sorted(family.scope), "audience": list(family.audience),
        "created_at": family.created_at, "last_refreshed_at": last_refreshed,
        "expires_at": family.expires_at, "active": family.revoked_at is None,
        "revoked_at": family.revoked_at, "revoke_reason": family.revoke_reason,
    }


def _status(active: bool, revoked_at: float | None, reason: str | None) -> str:
    return "active" if active else f"revoked {when(revoked_at)} ({reason or '-'})"


async def resolve_users(uow: UnitOfWork, *, user_id: str | None, username: str | None,
                        tenant: str | None) -> list[str] | None:
    """The user ids named by ``--user-id`` / ``--username`` (None: no user filter). A
    username without a tenant may name one user in each tenant."""
    if user_id is not None:
        return [user_id]
    if username is None:
        return None
    if tenant is not None:
        user = await uow.users.by_username(tenant, username)
        return [user.user_id] if user else []
    found = await uow.users.search(username_prefix=username, limit=1000)
    return [u.user_id for u in found if u.username == username]


@click.group()
def sessions() -> None:
    """Sessions: list, inspect, revoke, bump."""


@sessions.command("ls")
@click.option("--user-id", default=None, help="Only this user's sessions.")
@click.option("--username", default=None,
              help="Only this username's sessions (in --tenant when given).")
@click.option("--tenant", default=None, help="Only sessions in this tenant.")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked sessions.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def list_sessions(user_id: str | None, username: str | None, tenant: str | None,
                  include_revoked: bool, limit: int, as_json: bool) -> None:
    """Sessions, newest first (active ones unless --all)."""
    if user_id is not None and username is not None:
        fail("name a user by --user-id or --username, not both")

    async def work(identity: Identity) -> list[dict[str, Any]]:
        async with identity.store.unit_of_work(read_only=True) as uow:
            user_ids = await resolve_users(uow, user_id=user_id, username=username,
                                           tenant=tenant)
            found = await uow.sessions.search(user_ids=user_ids, tenant_id=tenant,
                                              include_revoked=include_revoked, limit=limit)
            users = {u.user_id: u for u in await uow.users.get_many(
                sorted({s.user_id for s in found}))}
        return [session_view(s, users.get(s.user_id)) for s in found]

    try:
        rows = run_with_identity(work)
    except StoreError as exc:
        fail(str(exc))
        return
    if as_json:
        echo_json(rows)
        return
    echo_table(("sid", "user", "tenant", "sv", "acr", "created", "last seen", "status"),
               ([r["sid"], r["username"] or r["user_id"], r["tenant_id"], r["sv"], r["acr"],
                 when(r["created_at"]), when(r["last_seen_at"]),
                 _status(r["active"], r["revoked_at"], r["revoke_reason"])] for r in rows),
               empty="no sessions match")


@sessions.command()
@identifier("sid", metavar="SID")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def show(sid: str, as_json: bool) -> None:
    """One session: who, how they signed in, its state and its refresh families."""

    async def work(identity: Identity) -> dict[str, Any] | None:
        async with identity.store.unit_of_work(read_only=True) as uow:
            session = await uow.sessions.get(sid)
            if session is None:
                return None
            user = await uow.users.get(session.user_id)
            families = await uow.refresh.families_for_session(sid)
            last = await uow.refresh.last_refreshed([f.family_id for f in families])
        view = session_view(session, user)
        view["families"] = [family_view(f, last.get(f.family_id)) for f in families]
        return view

    try:
        view = run_with_identity(work)
    except StoreError as exc:
        fail(str(exc))
        return
    if view is None:
        fail(f"no session {sid}")
        return
    if as_json:
        echo_json(view)
        return
    echo_fields([
        ("sid", view["sid"]), ("user", f"{view['username'] or '?'} ({view['user_id']})"),
        ("tenant", view["tenant_id"]), ("session version", view["sv"]),
        ("acr / amr", f"{view['acr']} / {' '.join(view['amr']) or '-'}"),
        ("signed in", when(view["auth_time"])), ("created", when(view["created_at"])),
        ("last seen", when(view["last_seen_at"])), ("user agent", view["user_agent"]),
        ("address", view["client_address"]),
        ("kind", f"{view['kind']} {view['device_client_id'] or ''}".strip()),
        ("status", _status(view["active"], view["revoked_at"], view["revoke_reason"])),
    ])
    click.echo("")
    echo_table(("family", "client", "scope", "created", "last refresh", "expires", "status"),
               ([f["family_id"], f["client_id"], f["scope"], when(f["created_at"]),
                 when(f["last_refreshed_at"]), when(f["expires_at"]),
                 _status(f["active"], f["revoked_at"], f["revoke_reason"])]
                for f in view["families"]),
               empty="no refresh families")
    click.echo(f"\naudit trail: tessera audit trace {view['sid']}")


def _target(sid: str | None, user_id: str | None) -> dict[str, str | None]:
    if (sid is None) == (user_id is None):
        fail("name exactly one session (SID or --sid) or one user (--user-id)")
    return {"sid": sid, "user_id": user_id}


@sessions.command()
@identifier("sid", metavar="SID", required=False, help="The session (same as SID).")
@click.option("--user-id", default=None, help="Every session of this user instead.")
@click.option("--reason", default="admin", show_default=True)
def bump(sid: str | None, user_id: str | None, reason: str) -> None:
    """Bump the session version of SID, or of every session of a user (role change,
    password reset): tokens issued before go stale."""
    target = _target(sid, user_id)

    async def work(identity: Identity) -> int:
        return await admin.bump_version(identity.admin, **target, reason=reason, actor="cli")
    try:
        echo_json({"sessions": run_with_identity(work)})
    except admin.AdminError as exc:
        fail(str(exc))


@sessions.command()
@identifier("sid", metavar="SID", required=False, help="The session (same as SID).")
@click.option("--user-id", default=None, help="Every session of this user instead.")
@click.option("--reason", default="admin", show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"sessions": N}.')
def revoke(sid: str | None, user_id: str | None, reason: str, as_json: bool) -> None:
    """End session SID (and its refresh families), or all of a user's sessions. No
    prompt: for a user, a family or a tenant with confirmation and progress use
    `tessera revoke`."""
    target = _target(sid, user_id)

    async def work(identity: Identity) -> int:
        return await admin.revoke(identity.admin, **target, reason=reason, actor="cli")
    try:
        count = run_with_identity(work)
    except (admin.AdminError, StoreError) as exc:
        fail(str(exc))
        return
    if as_json:
        echo_json({"sessions": count})
    else:
        click.echo(f"revoked {count} session(s)" if count else
                   "nothing revoked (no such active session)")
