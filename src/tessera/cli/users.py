"""``tessera users create|ls|show|disable|enable|delete|set-password|grant-role|revoke-role|
totp-enrol``.

A user is named by ``--username`` in ``--tenant`` (default ``default``). Every verb prints
one JSON object; revocations go through the outbox (see ``application.accounts``). The CLI
is the platform operator, so it reaches every tenant.
"""

from __future__ import annotations

import sys

import click

from tessera.application import accounts, admin
from tessera.cli._common import echo_json, fail, run_json, run_with_identity
from tessera.core.roles import ROLES
from tessera.core.users import DEFAULT_TENANT
from tessera.identity.compose import Identity
from tessera.store.ports import StoreError

__all__ = ["users"]


@click.group()
def users() -> None:
    """End users."""


@users.command()
@click.option("--username", required=True)
@click.option("--password-stdin", is_flag=True, required=True,
              help="Read the password from the first line of standard input.")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True)
def create(username: str, password_stdin: bool, tenant: str) -> None:
    """Create a user; prints JSON with the user_id."""
    password = sys.stdin.readline().rstrip("\r\n")

    async def work(identity: Identity) -> dict[str, str]:
        user = await admin.create_user(identity.admin, username=username, password=password,
                                       tenant_id=tenant)
        return {"user_id": user.user_id, "username": user.username, "tenant_id": user.tenant_id}

    try:
        echo_json(run_with_identity(work))
    except (admin.AdminError, StoreError) as exc:
        fail(str(exc))


@users.command("totp-enrol")
@click.option("--username", required=True)
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True)
def totp_enrol(username: str, tenant: str) -> None:
    """Give a user a new TOTP secret, on at once (replacing any); prints JSON with the
    otpauth:// URI and the secret, for an authenticator app or test automation."""

    async def work(identity: Identity) -> dict[str, str]:
        async with identity.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.by_username(tenant, username)
        if user is None:
            raise admin.AdminError(f"no user {username!r} in tenant {tenant!r}")
        enrolment = await identity.totp.provision(user, actor="cli")
        return {"user_id": user.user_id, "otpauth_uri": enrolment.uri,
                "secret": enrolment.secret}

    try:
        echo_json(run_with_identity(work))
    except (admin.AdminError, StoreError) as exc:
        fail(str(exc))


_USERNAME = click.option("--username", required=True)
_TENANT = click.option("--tenant", default=DEFAULT_TENANT, show_default=True)


@users.command("ls")
@click.option("--tenant", default=None, help="Only this tenant.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
def list_users(tenant: str | None, limit: int) -> None:
    """Users with their tenant, status and roles (deleted ones are left out)."""

    async def work(identity: Identity) -> list[dict[str, object]]:
        async with identity.store.unit_of_work(read_only=True) as uow:
            found = [u for u in await uow.users.search(tenant_id=tenant, limit=limit)
                     if u.deleted_at is None]
            roles = await uow.roles.of_users([u.user_id for u in found])
        return [{"user_id": u.user_id, "username": u.username, "tenant_id": u.tenant_id,
                 "disabled": u.disabled, "roles": sorted(roles.get(u.user_id, ()))}
                for u in found]

    run_json(work)


@users.command()
@_USERNAME
@_TENANT
def show(username: str, tenant: str) -> None:
    """One user: status, roles, active sessions."""

    async def work(identity: Identity) -> dict[str, object]:
        user = await accounts.find_user(identity.admin, username, tenant)
        return (await accounts.user_view(identity.admin, user)).as_json()

    run_json(work)


def _lifecycle(verb: str, help_text: str) -> None:
    @users.command(verb, help=help_text)
    @_USERNAME
    @_TENANT
    def command(username: str, tenant: str) -> None:
        async def work(identity: Identity) -> dict[str, object]:
            user = await accounts.find_user(identity.admin, username, tenant)
            if verb == "delete":
                ended = await accounts.delete_user(identity.admin, user, actor="cli")
            else:
                ended = await accounts.set_disabled(identity.admin, user,
                                                    disabled=verb == "disable", actor="cli")
            return {"user_id": user.user_id, "username": username, "tenant_id": tenant,
                    "status": {"disable": "disabled", "enable": "active",
                               "delete": "deleted"}[verb],
                    "sessions_revoked": ended,
                    "events": ["user.revoked"] if verb != "enable" else []}

        run_json(work)


_lifecycle("disable", "Disable a user: every session ends, every token is refused, no new "
                      "login or grant until enabled.")
_lifecycle("enable", "Enable a disabled user (nothing revoked comes back).")
_lifecycle("delete", "Delete a user: every session ends; password, second factor, roles "
                     "and consents are erased; the username is free again.")


@users.command("set-password")
@_USERNAME
@click.option("--password-stdin", is_flag=True, required=True,
              help="Read the new password from the first line of standard input.")
@_TENANT
def set_password(username: str, password_stdin: bool, tenant: str) -> None:
    """Set a user's password (a reset): every session of the user ends."""
    password = sys.stdin.readline().rstrip("\r\n")

    async def work(identity: Identity) -> dict[str, object]:
        user = await accounts.find_user(identity.admin, username, tenant)
        ended = await accounts.set_password(identity.admin, user, password, actor="cli")
        return {"user_id": user.user_id, "username": username, "tenant_id": tenant,
                "sessions_revoked": ended, "events": ["user.revoked"]}

    run_json(work)


def _role_command(verb: str, help_text: str) -> None:
    @users.command(verb, help=help_text)
    @_USERNAME
    @click.option("--role", required=True, metavar="ROLE",
                  help=f"One of {', '.join(sorted(ROLES))}.")
    @_TENANT
    def command(username: str, role: str, tenant: str) -> None:
        async def work(identity: Identity) -> dict[str, object]:
            user = await accounts.find_user(identity.admin, username, tenant)
            if verb == "grant-role":
                changed = await accounts.grant_role(identity.admin, user, role, actor="cli")
            else:
                changed = await accounts.revoke_role(identity.admin, user, role, actor="cli")
            view = await accounts.user_view(identity.admin, user)
            return {"user_id": user.user_id, "username": username, "tenant_id": tenant,
                    "role": role, "changed": changed, "roles": sorted(view.roles)}

        run_json(work)


_role_command("grant-role", "Grant a role (tenant-admin, impersonator, support in the "
                            "user's tenant; platform-admin across tenants).")
_role_command("revoke-role", "Remove a role now: the user's sessions get a new version, so "
                             "tokens carrying the privilege stop working everywhere.")
