"""Store contract of the read verbs the admin console uses: session listings by user and
tenant, families with their last refresh, filtered audit pages and audit trails."""

from __future__ import annotations

from dataclasses import replace

from tessera.core.sessions import Session
from tessera.core.users import User
from tessera.store.ports import AuditFilter, AuditRecord, Store
from tests.contract.conftest import NOW, a_family, a_session, a_token, a_user, uid


async def _users_with_sessions(store: Store, *users: User) -> list[Session]:
    made = []
    async with store.unit_of_work() as uow:
        for n, user in enumerate(users):
            await uow.users.add(user)
            session = replace(a_session(user), created_at=NOW + n)
            await uow.sessions.add(session, browser_handle_hash=None)
            made.append(session)
    return made


async def test_user_search_matches_a_literal_prefix_within_a_tenant(any_store: Store) -> None:
    tag = uid("t")
    ann, anna, bob = (a_user(username=f"{tag}ann"), a_user(username=f"{tag}anna"),
                      a_user(username=f"{tag}bob", tenant_id="other"))
    odd = a_user(username=f"{tag}a%_x")
    await _users_with_sessions(any_store, ann, anna, bob, odd)
    async with any_store.unit_of_work(read_only=True) as uow:
        found = await uow.users.search(username_prefix=f"{tag}ann")
        assert [u.username for u in found] == [f"{tag}ann", f"{tag}anna"]
        assert [u.username for u in await uow.users.search(username_prefix=f"{tag}a%")] \
            == [f"{tag}a%_x"]
        assert [u.user_id for u in await uow.users.search(username_prefix=tag,
                                                          tenant_id="other")] == [bob.user_id]
        many = await uow.users.get_many([ann.user_id, bob.user_id, "nobody"])
        assert {u.user_id for u in many} == {ann.user_id, bob.user_id}
        assert await uow.users.get_many([]) == []


async def test_session_search_pages_newest_first_and_filters(any_store: Store) -> None:
    tenant = uid("tenant")
    a, b = a_user(tenant_id=tenant), a_user(tenant_id=tenant)
    first, second = await _users_with_sessions(any_store, a, b)
    async with any_store.unit_of_work() as uow:
        third = replace(a_session(a), created_at=NOW + 5)
        await uow.sessions.add(third, browser_handle_hash=None)
        await uow.sessions.revoke(first.sid, at=NOW + 6, reason="test")
    async with any_store.unit_of_work(read_only=True) as uow:
        active = await uow.sessions.search(tenant_id=tenant)
        assert [s.sid for s in active] == [third.sid, second.sid]
        every = await uow.sessions.search(tenant_id=tenant, include_revoked=True)
        assert [s.sid for s in every] == [third.sid, second.sid, first.sid]
        page2 = await uow.sessions.search(tenant_id=tenant, include_revoked=True,
                                          offset=1, limit=1)
        assert [s.sid for s in page2] == [second.sid]
        of_a = await uow.sessions.search(user_ids=[a.user_id], include_revoked=True)
        assert [s.sid for s in of_a] == [third.sid, first.sid]
        assert await uow.sessions.search(user_ids=[]) == []
        assert [s.sid for s in await uow.sessions.active_for_tenant(tenant)] \
            == [second.sid, third.sid]


async def test_families_of_sessions_and_their_last_refresh(any_store: Store) -> None:
    user = a_user()
    (session,) = await _users_with_sessions(any_store, user)
    used, fresh = a_family(session, client_id="app-1"), a_family(session, client_id="app-2")
    async with any_store.unit_of_work() as uow:
        for family in (used, fresh):
            await uow.refresh.add_family(family)
            await uow.refresh.add_token(a_token(family))
        await uow.refresh.add_token(replace(a_token(used, generation=1), issued_at=NOW + 10))
        await uow.refresh.add_token(replace(a_token(used, generation=2), issued_at=NOW + 20))
    async with any_store.unit_of_work(read_only=True) as uow:
        families = await uow.refresh.families_for_sessions([session.sid, "other"])
        assert {f.family_id for f in families} == {used.family_id, fresh.family_id}
        assert await uow.refresh.families_for_sessions([]) == []
        last = await uow.refresh.last_refreshed([used.family_id, fresh.family_id])
        assert last == {used.family_id: NOW + 20}
        assert await uow.refresh.last_refreshed([]) == {}


async def test_audit_search_filters_and_pages_newest_first(any_store: Store) -> None:
    who = uid("sub")
    records = [  # the first two as older releases named the fields (still matched)
        AuditRecord("token.issued", NOW, {"subject": who, "tenant": "t1", "client": "c1"}),
        AuditRecord("token.issued", NOW + 1, {"subject": who, "tenant": "t2", "client": "c1"}),
        AuditRecord("session.revoked", NOW + 2, {"user_id": who, "tenant_id": "t1"}),
        AuditRecord("token.issued", NOW + 3, {"user_id": "someone else", "client_id": "c1"}),
        AuditRecord("token.issued", NOW + 4, {"user_id": who, "tenant_id": "t1",
                                              "client_id": "c2"}),
    ]
    async with any_store.unit_of_work() as uow:
        await uow.audit.append(records)
    async with any_store.unit_of_work(read_only=True) as uow:
        mine = await uow.audit.search(AuditFilter(user_id=who))
        assert [r.record.at for r in mine] == [NOW + 4, NOW + 2, NOW + 1, NOW]
        older = await uow.audit.search(AuditFilter(user_id=who), before_id=mine[1].id,
                                       limit=1)
        assert [r.record.at for r in older] == [NOW + 1]
        issued_t1 = await uow.audit.search(AuditFilter(event="token.issued", tenant_id="t1",
                                                       user_id=who, client_id="c1"))
        assert [r.record.at for r in issued_t1] == [NOW]
        by_client = await uow.audit.search(AuditFilter(client_id="c2"))
        assert [r.record.at for r in by_client] == [NOW + 4]
        window = await uow.audit.search(AuditFilter(user_id=who, since=NOW + 1,
                                                    until=NOW + 1))
        assert [r.record.at for r in window] == [NOW + 1]


async def test_audit_naming_finds_a_value_in_any_field_oldest_first(any_store: Store) -> None:
    jti, corr = uid("jti"), uid("corr")
    async with any_store.unit_of_work() as uow:
        await uow.audit.append([
            AuditRecord("token.issued", NOW, {"jti": jti}),
            AuditRecord("access.allowed", NOW + 1, {"jti": jti, "correlation_id": corr}),
            AuditRecord("access.denied", NOW + 2, {"correlation_id": corr}),
            AuditRecord("token.issued", NOW + 3, {"jti": uid("jti"), "count": 3}),
        ])
    async with any_store.unit_of_work(read_only=True) as uow:
        trail = await uow.audit.naming([jti, corr], fields=["jti", "correlation_id"])
        assert [r.record.event for r in trail] == ["token.issued", "access.allowed",
                                                   "access.denied"]
        assert len(await uow.audit.naming([jti, corr], fields=["jti", "correlation_id"],
                                          limit=2)) == 2
        assert await uow.audit.naming([], fields=["jti"]) == []
