"""Store contract for federation (migration 0012), on every store: providers unique per
tenant, links unique per upstream subject, profiles, upstream sessions (replaced after a
re-authentication), lookups by upstream ``sid``/``sub``, and the replay memory of inbound
``jti`` values (exactly one concurrent caller wins)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tessera.core.federation import ExternalIdentity, IdentityProvider, UpstreamSession
from tessera.store.ports import Store, UnitOfWork
from tests.contract.conftest import NOW, a_session, a_user, uid
from tests.contract.test_store_races import race


def a_provider(tenant_id: str = "default", name: str | None = None) -> IdentityProvider:
    return IdentityProvider(idp_id=uid("idp"), tenant_id=tenant_id, name=name or uid("corp"),
                            issuer="https://login.example", client_id="rp",
                            sealed_secret="v1.sealed", scope="openid email",
                            mapping={"roles": {"eng": "support"}}, created_at=NOW)


async def test_providers_are_unique_per_tenant(any_store: Store) -> None:
    first = a_provider(name="corp-x")
    async with any_store.unit_of_work() as uow:
        assert await uow.federation.add_provider(first)
        assert not await uow.federation.add_provider(a_provider(name="corp-x"))
        other_tenant = a_provider(tenant_id=uid("t"), name="corp-x")
        assert await uow.federation.add_provider(other_tenant)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.federation.provider("default", "corp-x") == first
        assert await uow.federation.provider_by_id(first.idp_id) == first
        assert first in await uow.federation.providers("default")
        assert await uow.federation.providers(other_tenant.tenant_id) == [other_tenant]
    async with any_store.unit_of_work() as uow:
        assert await uow.federation.set_provider_disabled(first.idp_id, True)
        assert not await uow.federation.set_provider_disabled(uid("idp"), True)
        disabled = await uow.federation.provider_by_id(first.idp_id)
        assert disabled is not None and disabled.disabled
        assert await uow.federation.delete_provider(first.idp_id)
        assert not await uow.federation.delete_provider(first.idp_id)
        assert await uow.federation.provider_by_id(first.idp_id) is None


async def test_links_profiles_and_upstream_sessions(any_store: Store) -> None:
    provider, user = a_provider(), a_user()
    session, other = a_session(user), a_session(user)
    link = ExternalIdentity(idp_id=provider.idp_id, subject="up-1", user_id=user.user_id,
                            profile={"name": "A"}, profile_hash="h1", linked_by="jit",
                            created_at=NOW, updated_at=NOW)
    async with any_store.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.sessions.add(session, browser_handle_hash=None)
        await uow.sessions.add(other, browser_handle_hash=None)
        assert await uow.federation.add_provider(provider)
        assert await uow.federation.link(link)
        assert not await uow.federation.link(link)
        assert await uow.federation.profile_of(user.user_id) == {"name": "A"}
        assert await uow.federation.update_profile(provider.idp_id, "up-1",
                                                   profile={"name": "B"}, profile_hash="h2",
                                                   at=NOW + 1)
        assert not await uow.federation.update_profile(provider.idp_id, "nobody",
                                                       profile={}, profile_hash="", at=NOW)
        await uow.federation.add_upstream_session(UpstreamSession(
            session.sid, provider.idp_id, "up-1", "usid-1"))
        await uow.federation.add_upstream_session(UpstreamSession(
            other.sid, provider.idp_id, "up-1", None))
    async with any_store.unit_of_work(read_only=True) as uow:
        stored = await uow.federation.linked(provider.idp_id, "up-1")
        assert stored is not None and stored.profile_hash == "h2"
        assert await uow.federation.profile_of(user.user_id) == {"name": "B"}
        assert await uow.federation.profile_of(uid("nobody")) is None
        fed = uow.federation
        assert await fed.sessions_for_upstream(provider.idp_id, upstream_sid="usid-1") \
            == [session.sid]
        assert sorted(await fed.sessions_for_upstream(provider.idp_id, subject="up-1")) \
            == sorted([session.sid, other.sid])
        assert await fed.sessions_for_upstream(provider.idp_id, upstream_sid="usid-1",
                                               subject="someone-else") == []
        assert await fed.sessions_for_upstream(provider.idp_id) == []
        assert await fed.sessions_for_upstream(uid("idp"), subject="up-1") == []
    async with any_store.unit_of_work() as uow:  # re-authenticated upstream: replaced
        await uow.federation.add_upstream_session(UpstreamSession(
            session.sid, provider.idp_id, "up-1", "usid-2"))
        replaced = await uow.federation.upstream_session(session.sid)
        assert replaced is not None and replaced.upstream_sid == "usid-2"


async def test_exactly_one_concurrent_caller_remembers_a_jti(any_store: Store) -> None:
    idp_id, jti = uid("idp"), uid("jti")

    async def remember(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> bool:
        await reads_done()
        return await uow.federation.remember_jti(idp_id, jti, expires_at=NOW + 300)

    assert sorted(await race(any_store, remember)).count(True) == 1
    async with any_store.unit_of_work() as uow:
        assert await uow.federation.remember_jti(uid("idp"), jti, expires_at=NOW + 300)
        assert await uow.federation.prune_jtis(NOW + 301) >= 2
        assert await uow.federation.remember_jti(idp_id, jti, expires_at=NOW + 300)
