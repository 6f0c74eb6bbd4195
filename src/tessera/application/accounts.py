"""User lifecycle and roles, shared by the CLI, the console and the browser pages.

Each verb is one transaction: the state change, its revocation event(s) in the outbox and
its audit record commit together (DESIGN §3):

    verb            state                                   published
    disable         disabled                                user.revoked (+ session.revoked …)
    enable          enabled                                 -
    delete          tombstone: no password, factors, roles,  user.revoked (+ session.revoked …)
                    consents; username freed
    set_password    new argon2id hash                       user.revoked (+ session.revoked …),
                                                            except the caller's own session
    grant_role      role held                               -
    revoke_role     role gone                               session.version_bumped per session
                                                            (impersonations under them end)

``actor`` names who did it (``cli``, or an administrator's user id) in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from tessera.application import lifecycle, signal_events
from tessera.application.admin import AdminContext, AdminError
from tessera.application.transaction import Transaction, transaction
from tessera.core.roles import ROLES
from tessera.core.users import TOTP, User
from tessera.observability import events

__all__ = ["MIN_PASSWORD", "UserView", "delete_user", "find_user", "grant_role",
           "revoke_role", "set_disabled", "set_password", "user_view"]

MIN_PASSWORD = 8


@dataclass(frozen=True, slots=True)
class UserView:
    user: User
    roles: frozenset[str]
    active_sessions: int

    def as_json(self) -> dict[str, object]:
        u = self.user
        return {"user_id": u.user_id, "username": u.username, "tenant_id": u.tenant_id,
                "disabled": u.disabled, "deleted": u.deleted_at is not None,
                "roles": sorted(self.roles), "active_sessions": self.active_sessions}


async def find_user(ctx: AdminContext, username: str, tenant_id: str) -> User:
    """The (not deleted) user ``username`` of ``tenant_id``; ``AdminError`` if none."""
    async with ctx.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_username(tenant_id, username)
    if user is None or user.deleted_at is not None:
        raise AdminError(f"no user {username!r} in tenant {tenant_id!r}")
    return user


async def user_view(ctx: AdminContext, user: User) -> UserView:
    async with ctx.store.unit_of_work(read_only=True) as uow:
        fresh = await uow.users.get(user.user_id) or user
        roles = await uow.roles.of_user(user.user_id)
        active = len(await uow.sessions.active_for_user(user.user_id))
    return UserView(fresh, roles, active)


def _ttl(ctx: AdminContext) -> float:
    return float(ctx.token_ttl)


async def _revoke_everywhere(ctx: AdminContext, tx: Transaction, user: User, *,
                             reason: str, actor: str, keep_sid: str | None = None) -> int:
    """End the user's sessions (but ``keep_sid``) and publish ``user.revoked``: every
    token of the user issued until now is refused by every verifier."""
    now = ctx.clock.now()
    count = 0
    for session in await tx.uow.sessions.active_for_user(user.user_id):
        if session.sid != keep_sid:
            count += await lifecycle.revoke_session(tx, session.sid, at=now, reason=reason,
                                                    token_ttl=_ttl(ctx), actor=actor)
    await lifecycle.publish_user_revoked(tx, user.user_id, at=now, reason=reason,
                                         token_ttl=_ttl(ctx))
    return count


async def set_disabled(ctx: AdminContext, user: User, *, disabled: bool,
                       actor: str) -> int:
    """Disable (ending every session, user-wide revocation) or enable a user. Returns
    the sessions ended."""
    async with transaction(ctx.store, ctx.audit) as tx:
        if not await tx.uow.users.set_disabled(user.user_id, disabled):
            raise AdminError(f"no user {user.username!r}")
        ended = 0
        if disabled:
            ended = await _revoke_everywhere(ctx, tx, user, reason="user_disabled",
                                             actor=actor)
        tx.audit(events.USER_DISABLED if disabled else events.USER_ENABLED,
                 user_id=user.user_id, tenant_id=user.tenant_id, actor=actor, sessions=ended)
    return ended


async def delete_user(ctx: AdminContext, user: User, *, actor: str) -> int:
    """Delete: end every session (user-wide revocation), erase the password, second
    factors, recovery codes, roles and consents, free the username; the row stays as a
    tombstone so sessions and the audit trail still name it. Returns sessions ended."""
    now = ctx.clock.now()
    async with transaction(ctx.store, ctx.audit) as tx:
        if not await tx.uow.users.tombstone(user.user_id, at=now):
            raise AdminError(f"no user {user.username!r}")
        ended = await _revoke_everywhere(ctx, tx, user, reason="user_deleted",
                                         actor=actor)
        await tx.uow.factors.delete(user.user_id, TOTP)
        await tx.uow.recovery_codes.delete_for_user(user.user_id)
        await tx.uow.roles.revoke_all(user.user_id)
        await tx.uow.consents.delete_for_user(user.user_id)
        tx.audit(events.USER_DELETED, user_id=user.user_id, tenant_id=user.tenant_id,
                 actor=actor, sessions=ended)
    return ended


async def set_password(ctx: AdminContext, user: User, password: str, *, actor: str,
                       keep_sid: str | None = None) -> int:
    """Replace the password; every other session ends and every token issued until now
    is refused (user-wide revocation). ``keep_sid``: the session the user changed it
    from (it stays). Returns the sessions ended."""
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AdminError("password must be at most 1024 characters")
    password_hash = ctx.passwords.hash(password)
    async with transaction(ctx.store, ctx.audit) as tx:
        if not await tx.uow.users.set_password(user.user_id, password_hash):
            raise AdminError(f"no user {user.username!r}")
        ended = await _revoke_everywhere(ctx, tx, user, reason="password_changed",
                                         actor=actor, keep_sid=keep_sid)
        await signal_events.credential_changed(
            tx, user_id=user.user_id, tenant_id=user.tenant_id, at=ctx.clock.now(),
            credential_type="password", change_type="update",
            initiator="user" if actor == user.user_id else "admin")
        tx.audit(events.USER_PASSWORD_CHANGED, user_id=user.user_id, tenant_id=user.tenant_id,
                 actor=actor, sessions=ended)
    return ended


def _known(role: str) -> str:
    if role not in ROLES:
        raise AdminError(f"unknown role {role!r}; one of {', '.join(sorted(ROLES))}")
    return role


async def grant_role(ctx: AdminContext, user: User, role: str, *, actor: str) -> bool:
    """True if granted now, False if the user held it already. A new privilege reaches
    tokens when they are next issued (login, refresh)."""
    async with transaction(ctx.store, ctx.audit) as tx:
        if await tx.uow.users.get(user.user_id) is None or user.deleted_at is not None:
            raise AdminError(f"no user {user.username!r}")
        granted = await tx.uow.roles.grant(user.user_id, _known(role),
                                           at=ctx.clock.now(), by=actor)
        if granted:
            await signal_events.claims_changed(
                tx, user_id=user.user_id, tenant_id=user.tenant_id, at=ctx.clock.now(),
                claims={"roles": sorted(await tx.uow.roles.of_user(user.user_id))})
            tx.audit(events.ROLE_GRANTED, user_id=user.user_id, tenant_id=user.tenant_id,
                     role=role, actor=actor)
    return granted


async def revoke_role(ctx: AdminContext, user: User, role: str, *, actor: str) -> bool:
    """True if removed now. A role removed is gone now: every session of the user gets a
    new version (tokens carrying the old one are stale everywhere, refreshes re-check
    the roles), and impersonations under those sessions end."""
    async with transaction(ctx.store, ctx.audit) as tx:
        removed = await tx.uow.roles.revoke(user.user_id, _known(role))
        if removed:
            await lifecycle.bump_user_version(tx, user.user_id, at=ctx.clock.now(),
                                              reason="role_revoked",
                                              token_ttl=_ttl(ctx), actor=actor)
            await signal_events.claims_changed(
                tx, user_id=user.user_id, tenant_id=user.tenant_id, at=ctx.clock.now(),
                claims={"roles": sorted(await tx.uow.roles.of_user(user.user_id))})
            tx.audit(events.ROLE_REVOKED, user_id=user.user_id, tenant_id=user.tenant_id,
                     role=role, actor=actor)
    return removed
