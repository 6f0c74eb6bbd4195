"""``tessera revoke --user-id U | --sid S | --family-id F | --tenant T``: one command for
every revocation grain an operator needs after a compromise. The options take the
vocabulary's names (docs/architecture.md); the first spellings ``--user``,
``--session`` and ``--family`` still work.

Each run shows what it is about to revoke and asks first (``--yes`` skips the question;
without a terminal and without ``--yes`` it aborts). A tenant is cut off at once by one
``tenant.revoked`` event, then its sessions are revoked in batches with a progress bar on
standard error; an interrupted run can simply be repeated. ``--json`` prints the result
as one JSON object on standard output (prompts and progress go to standard error).

``--wait [--timeout S]`` then waits until every live verifier reported having applied the
revocation (``identity.completion``) and prints ``applied at 16/16 verifiers in 23 ms``,
or, after the timeout, the verifiers still behind and those no longer reporting; it exits
1 when the timeout passed first. A running ``tessera serve`` must relay the events (the
CLI runs no relay) and receive the verifiers' reports.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from tessera.application import admin
from tessera.cli._common import echo_json, fail, run_with_identity
from tessera.cli._table import bulk_progress
from tessera.cli.sessions import resolve_users
from tessera.identity.compose import Identity
from tessera.store.ports import StoreError

__all__ = ["revoke"]

class _Nothing(Exception):
    """The target exists but has nothing left to revoke."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(detail)
        self.target = target


@click.command()
@click.option("--user-id", "--user", "user", default=None, metavar="USER_ID",
              help="Every session of a user (user id, or a username unique across tenants).")
@click.option("--sid", "--session", "sid", default=None, metavar="SID", help="One session.")
@click.option("--family-id", "--family", "family_id", default=None, metavar="FAMILY_ID",
              help="One refresh family (a client's refresh chain; the session stays).")
@click.option("--tenant", default=None, metavar="TENANT",
              help="Every token and every active session of a tenant (new logins still "
                   "work: `tessera tenants suspend` also refuses them).")
@click.option("--reason", default="admin", show_default=True,
              help="Recorded in the events and the audit trail (e.g. compromise).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--wait", is_flag=True,
              help="Wait until every live verifier has applied it (logout completion).")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="With --wait: give up after this many seconds (exit status 1).")
def revoke(user: str | None, sid: str | None, family_id: str | None, tenant: str | None,
           reason: str, yes: bool, as_json: bool, wait: bool, timeout: float) -> None:
    """Revoke a user's sessions, a session, a refresh family or a whole tenant."""
    chosen = [name for name, value in (("--user-id", user), ("--sid", sid),
                                       ("--family-id", family_id), ("--tenant", tenant))
              if value is not None]
    if len(chosen) != 1:
        fail("name exactly one of --user-id, --sid, --family-id, --tenant")

    def confirm(question: str) -> None:
        if not yes:
            click.confirm(question, abort=True, err=True)

    async def work(identity: Identity) -> dict[str, Any]:
        if user is not None:
            result = await _user(identity, user, reason, confirm)
        elif sid is not None:
            result = await _session(identity, sid, reason, confirm)
        elif family_id is not None:
            result = await _family(identity, family_id, reason, confirm)
        else:
            assert tenant is not None
            result = await _tenant(identity, tenant, reason, confirm)
        if wait and result.get("events"):
            await _wait(identity, result, timeout)
        return result

    try:
        result = run_with_identity(work)
    except _Nothing as exc:
        result = {"target": exc.target, "nothing_to_revoke": True, "detail": str(exc),
                  "summary": f"nothing to revoke: {exc}"}
    except (admin.AdminError, StoreError) as exc:
        fail(str(exc))
        return
    if as_json:
        echo_json(result)
    else:
        click.echo(result["summary"])
        if "completion" in result:
            click.echo(result["completion"]["summary"])
    if "completion" in result and not result["completion"]["done"]:
        sys.exit(1)


async def _wait(identity: Identity, result: dict[str, Any], within: float) -> None:
    """Logout completion of everything this command committed: the outbox head right
    after it (a concurrent revocation can only make this wait a little longer)."""
    async with identity.store.unit_of_work(read_only=True) as uow:
        seq = await uow.revocations.last_seq()
    status, waited = await identity.completion.wait(seq, within=within)
    result["completion"] = status.to_json(waited=waited) | {
        "waited_seconds": round(waited, 3)}


Confirm = Callable[[str], None]


async def _user(identity: Identity, name: str, reason: str,
                confirm: Confirm) -> dict[str, Any]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        if await uow.users.get(name) is not None:
            user_id = name
        else:
            ids = await resolve_users(uow, user_id=None, username=name, tenant=None)
            if not ids:
                raise admin.AdminError(f"no user {name!r} (by id or username)")
            if len(ids) > 1:
                raise admin.AdminError(f"username {name!r} exists in {len(ids)} tenants; "
                                       "pass the user id")
            user_id = ids[0]
        active = await uow.sessions.active_for_user(user_id)
    confirm(f"Revoke {len(active)} active session(s) of user {user_id} and every token "
            "issued to the user until now?")
    count = await admin.revoke(identity.admin, user_id=user_id, reason=reason, actor="cli")
    return {"target": "user", "user_id": user_id, "sessions": count, "reason": reason,
            "events": (["session.revoked"] if count else []) + ["user.revoked"],
            "summary": f"revoked {count} session(s) of user {user_id}; "
                       "published user.revoked"}


async def _session(identity: Identity, sid: str, reason: str,
                   confirm: Confirm) -> dict[str, Any]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        session = await uow.sessions.get(sid)
    if session is None:
        raise admin.AdminError(f"no session {sid!r}")
    if not session.active:
        raise _Nothing("session", f"session {sid} is already revoked")
    confirm(f"Revoke session {sid} of user {session.user_id} (tenant {session.tenant_id})?")
    count = await admin.revoke(identity.admin, sid=sid, reason=reason, actor="cli")
    return {"target": "session", "sid": sid, "user_id": session.user_id, "sessions": count,
            "reason": reason, "events": ["session.revoked"] if count else [],
            "summary": f"revoked session {sid}" if count else f"session {sid} was not active"}


async def _family(identity: Identity, family_id: str, reason: str,
                  confirm: Confirm) -> dict[str, Any]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        family = await uow.refresh.get_family(family_id)
    if family is None:
        raise admin.AdminError(f"no refresh family {family_id!r}")
    if family.revoked_at is not None:
        raise _Nothing("family", f"family {family_id} is already revoked")
    confirm(f"Revoke refresh family {family_id} (client {family.client_id}, session "
            f"{family.sid})?")
    done = await admin.revoke_family(identity.admin, family_id, reason=reason, actor="cli")
    return {"target": "family", "family_id": family_id, "sid": family.sid,
            "client_id": family.client_id, "families": int(done), "reason": reason,
            "events": ["family.revoked"] if done else [],
            "summary": f"revoked refresh family {family_id}" if done
            else f"family {family_id} was already revoked"}


async def _tenant(identity: Identity, tenant: str, reason: str,
                  confirm: Confirm) -> dict[str, Any]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        expected = len(await uow.sessions.active_for_tenant(tenant))
    confirm(f"Revoke EVERY token of tenant {tenant!r} issued until now and its "
            f"{expected} active session(s)?")

    with bulk_progress(expected, f"revoking sessions of {tenant}") as advance:
        count = await admin.revoke_tenant(identity.admin, tenant, reason=reason, actor="cli",
                                          progress=advance)
    return {"target": "tenant", "tenant_id": tenant, "sessions": count, "reason": reason,
            "events": ["tenant.revoked"] + (["session.revoked"] if count else []),
            "summary": f"published tenant.revoked for {tenant}; revoked {count} "
                       "session(s)"}
