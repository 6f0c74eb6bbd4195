"""The console's read model: sessions with their user, refresh families (client, last
refresh) and device, and pages of the audit trail. Read-only units of work only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tessera.core.refresh import RefreshFamily
from tessera.core.revocation import RevocationKind
from tessera.core.sessions import Session
from tessera.core.users import User
from tessera.identity.compose import Identity
from tessera.store.ports import AuditFilter, StoredAudit, UnitOfWork

__all__ = ["FamilyView", "SessionFilter", "SessionPage", "SessionView", "audit_page",
           "list_sessions", "load_family", "load_user", "logout_completion", "session_detail",
           "tenant_active_sessions"]

_MATCHING_USERS = 200
"""At most this many users match a username prefix (a narrower prefix finds the rest)."""


@dataclass(frozen=True, slots=True)
class FamilyView:
    family: RefreshFamily
    client_name: str
    last_refresh: float | None


@dataclass(frozen=True, slots=True)
class SessionView:
    session: Session
    user: User | None
    families: tuple[FamilyView, ...]
    roles: frozenset[str] = frozenset()
    """The user's roles now."""
    acting_admin: User | None = None
    """An impersonation session: the administrator acting as the user."""

    @property
    def last_refresh(self) -> float | None:
        times = [f.last_refresh for f in self.families if f.last_refresh is not None]
        return max(times) if times else None

    @property
    def clients(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.client_name for f in self.families))


@dataclass(frozen=True, slots=True)
class SessionFilter:
    username: str | None = None
    """Username prefix."""
    tenant_id: str | None = None
    user_id: str | None = None
    include_revoked: bool = False
    page: int = 0


@dataclass(frozen=True, slots=True)
class SessionPage:
    rows: tuple[SessionView, ...]
    has_more: bool
    user: User | None
    """The user, when the filter names one by id."""


async def _views(uow: UnitOfWork, sessions: Sequence[Session]) -> tuple[SessionView, ...]:
    users = {u.user_id: u for u in await uow.users.get_many(
        sorted({s.user_id for s in sessions}))}
    families = await uow.refresh.families_for_sessions([s.sid for s in sessions])
    last = await uow.refresh.last_refreshed([f.family_id for f in families])
    names: dict[str, str] = {}
    for client_id in {f.client_id for f in families}:
        client = await uow.clients.get(client_id)
        names[client_id] = client.name if client else client_id
    by_sid: dict[str, list[FamilyView]] = {}
    for f in families:
        by_sid.setdefault(f.sid, []).append(
            FamilyView(f, names[f.client_id], last.get(f.family_id)))
    roles = await uow.roles.of_users(sorted(users))
    admins: dict[str, User | None] = {}
    for s in sessions:
        if s.actor_sid is not None and s.actor_sid not in admins:
            actor = await uow.sessions.get(s.actor_sid)
            admins[s.actor_sid] = await uow.users.get(actor.user_id) if actor else None
    return tuple(SessionView(s, users.get(s.user_id), tuple(by_sid.get(s.sid, ())),
                             roles.get(s.user_id, frozenset()),
                             admins.get(s.actor_sid) if s.actor_sid else None)
                 for s in sessions)


async def list_sessions(identity: Identity, criteria: SessionFilter, *,
                        page_size: int) -> SessionPage:
    async with identity.store.unit_of_work(read_only=True) as uow:
        named = await uow.users.get(criteria.user_id) if criteria.user_id else None
        user_ids: list[str] | None = None
        if criteria.user_id is not None:
            user_ids = [criteria.user_id]
        elif criteria.username:
            user_ids = [u.user_id for u in await uow.users.search(
                username_prefix=criteria.username, tenant_id=criteria.tenant_id,
                limit=_MATCHING_USERS)]
        found = await uow.sessions.search(
            user_ids=user_ids, tenant_id=criteria.tenant_id,
            include_revoked=criteria.include_revoked, offset=criteria.page * page_size,
            limit=page_size + 1)
        rows = await _views(uow, found[:page_size])
    if named is not None and criteria.tenant_id is not None \
            and named.tenant_id != criteria.tenant_id:
        named = None  # a user of another tenant is not shown to a tenant's administrator
    return SessionPage(rows, len(found) > page_size, named)


async def session_detail(identity: Identity, sid: str) -> SessionView | None:
    async with identity.store.unit_of_work(read_only=True) as uow:
        session = await uow.sessions.get(sid)
        if session is None:
            return None
        (view,) = await _views(uow, [session])
    return view


async def logout_completion(identity: Identity, sid: str) -> str | None:
    """How far the session's revocation has reached the verifiers ("applied at 4/4
    verifiers in 23 ms", or who is behind); None if it was never revoked or its event was
    pruned."""
    async with identity.store.unit_of_work(read_only=True) as uow:
        seq = await uow.revocations.seq_of(RevocationKind.SESSION_REVOKED, sid)
    if seq is None:
        return None
    return (await identity.completion.status(seq)).summary()


async def load_family(identity: Identity, family_id: str) -> RefreshFamily | None:
    async with identity.store.unit_of_work(read_only=True) as uow:
        return await uow.refresh.get_family(family_id)


async def load_user(identity: Identity, user_id: str) -> tuple[User | None, int]:
    """The user and how many active sessions they have."""
    async with identity.store.unit_of_work(read_only=True) as uow:
        return (await uow.users.get(user_id),
                len(await uow.sessions.active_for_user(user_id)))


async def tenant_active_sessions(identity: Identity, tenant_id: str) -> int:
    """Active sessions in the tenant."""
    async with identity.store.unit_of_work(read_only=True) as uow:
        return len(await uow.sessions.active_for_tenant(tenant_id))


async def audit_page(identity: Identity, criteria: AuditFilter, *, before_id: int | None,
                     page_size: int) -> tuple[list[StoredAudit], int | None]:
    """A page of rows, newest first, and the ``before_id`` of the next (older) page."""
    async with identity.store.unit_of_work(read_only=True) as uow:
        rows = await uow.audit.search(criteria, before_id=before_id, limit=page_size + 1)
    more = len(rows) > page_size
    rows = rows[:page_size]
    return rows, (rows[-1].id if more and rows else None)
