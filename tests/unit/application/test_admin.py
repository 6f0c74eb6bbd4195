"""The administrative verbs run on their collaborators alone: a store, an audit trail, a
clock, a password hasher and the two caches (``AdminContext``), no ``Identity``, no web
framework. Their HTTP and CLI paths are covered by the e2e tests (test_session_admin,
test_client_lifecycle, test_tenant_lifecycle, test_user_lifecycle)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from tessera.application import accounts, admin, client_admin, tenancy
from tessera.application.admin import AdminContext, AdminError
from tessera.application.standing import TenantDirectory
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationKind
from tessera.core.sessions import Session
from tessera.observability import events
from tessera.store.ports import AuditRecord
from tessera.store.sql import SqlStore

ISSUER = "https://id.example"
TOKEN_TTL = 300.0


class RecordingAudit:
    """The ``AuditTrail`` port, remembering what was emitted after commit."""

    def __init__(self, clock: FixedClock) -> None:
        self._clock = clock
        self.emitted: list[AuditRecord] = []

    def make(self, event: str, **fields: Any) -> AuditRecord:
        return AuditRecord(event=event, at=self._clock.now(),
                           fields={k: v for k, v in fields.items() if v is not None})

    def emit(self, records: Iterable[AuditRecord]) -> None:
        self.emitted.extend(records)

    async def record(self, event: str, **fields: Any) -> None:
        raise AssertionError("the admin verbs audit inside their transaction")

    def events(self) -> list[str]:
        return [r.event for r in self.emitted]


class PlainHasher:
    def hash(self, password: str) -> str:
        return f"plain:{password}"


class ForgetfulClients:
    def __init__(self) -> None:
        self.forgotten: list[str] = []

    def forget(self, client_id: str) -> None:
        self.forgotten.append(client_id)


@pytest.fixture
def audit(clock: FixedClock) -> RecordingAudit:
    return RecordingAudit(clock)


@pytest.fixture
def clients() -> ForgetfulClients:
    return ForgetfulClients()


@pytest.fixture
def ctx(sqlite_store: SqlStore, audit: RecordingAudit, clock: FixedClock,
        clients: ForgetfulClients) -> AdminContext:
    return AdminContext(sqlite_store, audit, clock, PlainHasher(), clients,
                        TenantDirectory(sqlite_store, clock), issuer=ISSUER,
                        token_ttl=TOKEN_TTL)


async def _session(ctx: AdminContext, user_id: str, tenant_id: str = "default") -> str:
    now = ctx.clock.now()
    sid = f"s-{user_id}-{now}"
    async with ctx.store.unit_of_work() as uow:
        await uow.sessions.add(Session(sid, user_id, tenant_id, 1, "1", ("pwd",), now, now,
                                       now), browser_handle_hash=None)
    return sid


async def _outbox(ctx: AdminContext) -> list[tuple[str, str]]:
    async with ctx.store.unit_of_work(read_only=True) as uow:
        return [(e.kind, e.key) for e in await uow.revocations.since(0, limit=100)]


async def test_create_user_hashes_with_the_given_hasher_and_registers_the_tenant(
        ctx: AdminContext, audit: RecordingAudit) -> None:
    user = await admin.create_user(ctx, username="alice", password="correct horse",
                                   tenant_id="acme")
    assert user.password_hash == "plain:correct horse"
    assert audit.events() == [events.TENANT_CREATED, events.USER_CREATED]
    async with ctx.store.unit_of_work(read_only=True) as uow:
        assert await uow.users.get(user.user_id) is not None
        assert await uow.tenants.get("acme") is not None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"grants": ()}, "at least one grant type"),
    ({"grants": ("password",)}, "unknown grant type"),
    ({"grants": ("authorization_code",)}, "at least one --redirect-uri"),
    ({"grants": ("client_credentials",), "public": True}, "public clients cannot"),
    ({"grants": ("authorization_code",), "redirect_uris": ("https://app.example/cb",),
      "backchannel_logout_uri": "http://app.example/logout"}, "backchannel logout URI"),
])
async def test_create_client_refuses_bad_registrations(
        ctx: AdminContext, audit: RecordingAudit, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(AdminError, match=message):
        await admin.create_client(ctx, name="app", **kwargs)
    assert audit.events() == []


async def test_revoking_a_session_commits_its_event_and_audit_record(
        ctx: AdminContext, audit: RecordingAudit) -> None:
    user = await admin.create_user(ctx, username="bob", password="hunter2hunter2")
    sid = await _session(ctx, user.user_id)
    assert await admin.revoke(ctx, sid=sid, reason="test", actor="ops") == 1
    assert await admin.revoke(ctx, sid=sid, reason="test", actor="ops") == 0  # already
    assert (RevocationKind.SESSION_REVOKED, sid) in await _outbox(ctx)
    assert audit.events().count(events.SESSION_REVOKED) == 1
    with pytest.raises(AdminError, match="exactly one"):
        await admin.revoke(ctx, sid=sid, user_id=user.user_id, reason="x", actor="ops")


async def test_a_disabled_client_is_forgotten_by_the_cache_and_revoked_everywhere(
        ctx: AdminContext, clients: ForgetfulClients, audit: RecordingAudit) -> None:
    client, secret = await admin.create_client(ctx, name="svc", grants=("client_credentials",))
    assert secret is not None
    assert await client_admin.set_disabled(ctx, client.client_id, disabled=True) == 0
    assert clients.forgotten == [client.client_id]
    assert (RevocationKind.CLIENT_REVOKED, client.client_id) in await _outbox(ctx)
    assert events.CLIENT_DISABLED in audit.events()


async def test_suspending_a_tenant_ends_its_sessions_and_tells_the_tenant_cache(
        ctx: AdminContext, audit: RecordingAudit) -> None:
    await tenancy.create_tenant(ctx, "initech")
    user = await admin.create_user(ctx, username="peter", password="tps-reports",
                                   tenant_id="initech")
    sid = await _session(ctx, user.user_id, "initech")
    assert not await ctx.tenants.suspended("initech")  # cached as active
    assert await tenancy.suspend_tenant(ctx, "initech") == 1
    assert await ctx.tenants.suspended("initech")  # forgotten, read again
    outbox = await _outbox(ctx)
    assert (RevocationKind.TENANT_REVOKED, "initech") in outbox
    assert (RevocationKind.SESSION_REVOKED, sid) in outbox
    assert {events.TENANT_SUSPENDED, events.TENANT_REVOKED} <= set(audit.events())


async def test_a_password_change_ends_every_other_session(ctx: AdminContext,
                                                          clock: FixedClock) -> None:
    user = await admin.create_user(ctx, username="carol", password="first-password")
    kept = await _session(ctx, user.user_id)
    clock.advance(1)
    other = await _session(ctx, user.user_id)
    assert await accounts.set_password(ctx, user, "second-password", actor=user.user_id,
                                       keep_sid=kept) == 1
    outbox = await _outbox(ctx)
    assert (RevocationKind.SESSION_REVOKED, other) in outbox
    assert (RevocationKind.SESSION_REVOKED, kept) not in outbox
    assert (RevocationKind.USER_REVOKED, user.user_id) in outbox
