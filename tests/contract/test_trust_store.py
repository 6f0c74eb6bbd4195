"""Store contract for the trust boundaries (migration 0005), on every store: tenants and
their suspension, roles, consents, recovery codes, user and client lifecycle writes,
impersonation sessions by their administrator, and wholesale revocations. Conditional
verbs are raced: exactly one concurrent caller wins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from tessera.core.consents import Consent
from tessera.core.revocation import RevocationKind
from tessera.core.tenants import Tenant
from tessera.store.ports import Store, UnitOfWork
from tests.contract.conftest import NOW, Graph, a_client, a_family, a_session, a_user, an_event, uid
from tests.contract.test_store_races import race


async def test_tenants_register_once_and_suspend_and_resume(any_store: Store) -> None:
    tid = uid("tenant")
    async with any_store.unit_of_work() as uow:
        assert await uow.tenants.add(Tenant(tid, "Acme", NOW))
        assert not await uow.tenants.add(Tenant(tid, "Other name", NOW + 1))
        assert await uow.tenants.get(tid) == Tenant(tid, "Acme", NOW)
        assert await uow.tenants.get(uid("nope")) is None
        assert await uow.tenants.set_suspended(tid, NOW + 5)
        assert not await uow.tenants.set_suspended(tid, NOW + 6)  # already suspended
    async with any_store.unit_of_work(read_only=True) as uow:
        suspended = await uow.tenants.get(tid)
        assert tid in [t.tenant_id for t in await uow.tenants.all()]
    assert suspended is not None and suspended.suspended_at == NOW + 5
    assert not suspended.active
    async with any_store.unit_of_work() as uow:
        assert await uow.tenants.set_suspended(tid, None)
        assert not await uow.tenants.set_suspended(tid, None)
        resumed = await uow.tenants.get(tid)
    assert resumed is not None and resumed.active


async def test_exactly_one_concurrent_suspension_wins(any_store: Store) -> None:
    tid = uid("tenant")
    async with any_store.unit_of_work() as uow:
        await uow.tenants.add(Tenant(tid, tid, NOW))

    async def suspend(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> bool:
        await uow.tenants.get(tid)
        await reads_done()
        return await uow.tenants.set_suspended(tid, NOW)

    assert sorted(await race(any_store, suspend)) == [False] * 7 + [True]


async def test_roles_are_granted_once_and_revoked(any_store: Store, graph: Graph) -> None:
    user_id = graph.user.user_id
    async with any_store.unit_of_work() as uow:
        assert await uow.roles.grant(user_id, "support", at=NOW, by="test")
        assert not await uow.roles.grant(user_id, "support", at=NOW, by="test")
        assert await uow.roles.grant(user_id, "tenant-admin", at=NOW, by="x" * 300)
        assert await uow.roles.of_user(user_id) == {"support", "tenant-admin"}
        assert await uow.roles.of_users([user_id, "nobody"]) == {
            user_id: frozenset({"support", "tenant-admin"})}
        assert await uow.roles.revoke(user_id, "support")
        assert not await uow.roles.revoke(user_id, "support")
        assert await uow.roles.revoke_all(user_id) == 1
        assert await uow.roles.of_user(user_id) == frozenset()
        assert await uow.roles.of_users([]) == {}


async def test_exactly_one_concurrent_grant_wins(any_store: Store, graph: Graph) -> None:
    async def grant(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> bool:
        await uow.roles.of_user(graph.user.user_id)
        await reads_done()
        return await uow.roles.grant(graph.user.user_id, "impersonator", at=NOW, by="race")

    assert sorted(await race(any_store, grant)) == [False] * 7 + [True]


async def test_consents_are_replaced_and_deleted(any_store: Store, graph: Graph) -> None:
    user_id = graph.user.user_id
    first = Consent(user_id, "app", frozenset({"openid"}), NOW)
    wider = Consent(user_id, "app", frozenset({"openid", "api:read"}), NOW + 1)
    async with any_store.unit_of_work() as uow:
        assert await uow.consents.get(user_id, "app") is None
        await uow.consents.put(first)
        await uow.consents.put(wider)
        await uow.consents.put(Consent(user_id, "other", frozenset(), NOW))
        assert await uow.consents.get(user_id, "app") == wider
        assert await uow.consents.delete_for_client("other") == 1
        assert await uow.consents.delete_for_user(user_id) == 1
        assert await uow.consents.get(user_id, "app") is None


async def test_recovery_codes_are_replaced_and_used_once(any_store: Store,
                                                         graph: Graph) -> None:
    user_id = graph.user.user_id
    async with any_store.unit_of_work() as uow:
        await uow.recovery_codes.replace(user_id, ["h1", "h2", "h3"], at=NOW)
        assert await uow.recovery_codes.remaining(user_id) == 3
        assert await uow.recovery_codes.use(user_id, "h1", at=NOW)
        assert not await uow.recovery_codes.use(user_id, "h1", at=NOW)
        assert not await uow.recovery_codes.use(user_id, "unknown", at=NOW)
        assert not await uow.recovery_codes.use("someone-else", "h2", at=NOW)
        assert await uow.recovery_codes.remaining(user_id) == 2
        await uow.recovery_codes.replace(user_id, ["h4"], at=NOW)
        assert not await uow.recovery_codes.use(user_id, "h2", at=NOW)  # replaced
        assert await uow.recovery_codes.remaining(user_id) == 1
        assert await uow.recovery_codes.delete_for_user(user_id) == 1


async def test_exactly_one_concurrent_use_of_a_recovery_code_wins(
        any_store: Store, graph: Graph) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.recovery_codes.replace(graph.user.user_id, ["only"], at=NOW)

    async def use(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> bool:
        await uow.recovery_codes.remaining(graph.user.user_id)
        await reads_done()
        return await uow.recovery_codes.use(graph.user.user_id, "only", at=NOW)

    assert sorted(await race(any_store, use)) == [False] * 7 + [True]


async def test_user_lifecycle_writes(any_store: Store, graph: Graph) -> None:
    user = graph.user
    async with any_store.unit_of_work() as uow:
        assert await uow.users.set_disabled(user.user_id, True)
        assert await uow.users.set_password(user.user_id, "$argon2id$new")
        assert not await uow.users.set_disabled("nobody", True)
        stored = await uow.users.get(user.user_id)
    assert stored == replace(user, disabled=True, password_hash="$argon2id$new")
    async with any_store.unit_of_work() as uow:
        assert await uow.users.tombstone(user.user_id, at=NOW + 9)
        assert not await uow.users.tombstone(user.user_id, at=NOW + 10)
        assert not await uow.users.set_disabled(user.user_id, False)  # a tombstone stays
        assert not await uow.users.set_password(user.user_id, "$argon2id$again")
        gone = await uow.users.get(user.user_id)
        assert await uow.users.by_username(user.tenant_id, user.username) is None
        reborn = a_user(tenant_id=user.tenant_id, username=user.username)
        await uow.users.add(reborn)  # the name is free again
    assert gone == replace(user, disabled=True, password_hash="!", deleted_at=NOW + 9,
                           username=f"deleted:{user.user_id}")


async def test_client_lifecycle_writes(any_store: Store) -> None:
    client = a_client(third_party=True, subject_audiences=("https://edge.example",))
    async with any_store.unit_of_work() as uow:
        await uow.clients.add(client)
        assert await uow.clients.get(client.client_id) == client
        assert await uow.clients.set_disabled(client.client_id, True)
        assert await uow.clients.set_secret(client.client_id, "1" * 64)
        assert await uow.clients.get(client.client_id) == replace(
            client, disabled=True, secret_hash="1" * 64)
        assert await uow.clients.delete(client.client_id)
        assert not await uow.clients.delete(client.client_id)
        assert not await uow.clients.set_disabled(client.client_id, False)
        assert await uow.clients.get(client.client_id) is None


async def test_impersonation_sessions_are_found_by_their_administrator(
        any_store: Store, graph: Graph) -> None:
    admin = graph.session
    child = replace(a_session(graph.user), actor_sid=admin.sid, actor_jti="jti-1")
    other = replace(a_session(graph.user), actor_sid=admin.sid, actor_jti="jti-2")
    async with any_store.unit_of_work() as uow:
        for session in (child, other):
            await uow.sessions.add(session, browser_handle_hash=None)
        assert await uow.sessions.get(child.sid) == child
        assert {s.sid for s in await uow.sessions.acting_under(sid=admin.sid)} == {
            child.sid, other.sid}
        assert [s.sid for s in await uow.sessions.acting_under(jti="jti-2")] == [other.sid]
        assert await uow.sessions.acting_under() == []
        assert await uow.sessions.revoke(other.sid, at=NOW, reason="test")
        assert [s.sid for s in await uow.sessions.acting_under(sid=admin.sid)] == [child.sid]


async def test_active_families_of_a_client(any_store: Store, graph: Graph) -> None:
    mine = a_family(graph.session, client_id="mine")
    ended = a_family(graph.session, client_id="mine")
    async with any_store.unit_of_work() as uow:
        for family in (mine, ended):
            await uow.refresh.add_family(family)
        await uow.refresh.revoke_family(ended.family_id, at=NOW, reason="test")
        assert await uow.refresh.active_families_for_client("mine") == [mine]
        assert await uow.refresh.active_families_for_client("nobody") == []


async def test_wholesale_revocations_are_read_back_by_grain(any_store: Store) -> None:
    user, tenant = uid("user"), uid("tenant")
    async with any_store.unit_of_work() as uow:
        assert await uow.revocations.revoked_before([
            (RevocationKind.USER_REVOKED, user)]) is None
        await uow.revocations.append(an_event(user, kind=RevocationKind.USER_REVOKED))
        await uow.revocations.append(an_event(user, kind=RevocationKind.USER_REVOKED,
                                              data={"before": NOW + 30}))
        await uow.revocations.append(an_event(tenant, kind=RevocationKind.TENANT_REVOKED,
                                              data={"before": NOW + 60}))
        await uow.revocations.append(an_event(user, kind=RevocationKind.TOKEN_REVOKED))
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.revocations.revoked_before([
            (RevocationKind.USER_REVOKED, user)]) == NOW + 30
        assert await uow.revocations.revoked_before([
            (RevocationKind.USER_REVOKED, user), (RevocationKind.TENANT_REVOKED, tenant),
            (RevocationKind.CLIENT_REVOKED, "c")]) == NOW + 60
        assert await uow.revocations.revoked_before([
            (RevocationKind.CLIENT_REVOKED, user)]) is None
        assert await uow.revocations.revoked_before([]) is None
