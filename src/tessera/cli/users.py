"""``tessera users create``, ``tessera users totp-enrol``."""

from __future__ import annotations

import sys

import click

from tessera.cli._common import echo_json, fail, run_with_identity
from tessera.core.users import DEFAULT_TENANT
from tessera.identity import admin
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
        user = await admin.create_user(identity, username=username, password=password,
                                       tenant_id=tenant)
        return {"user_id": user.user_id, "username": user.username, "tenant": user.tenant_id}

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
