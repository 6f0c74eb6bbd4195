"""Store contract for step-up: ``sessions.step_up`` and the ``factors`` port (TOTP), on
every store. Conditional verbs are raced: exactly one concurrent caller wins."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tessera.store.ports import SealedFactor, Store
from tests.contract.conftest import NOW, Graph, a_session, a_user, uid


def a_factor(user_id: str, *, confirmed: bool = False) -> SealedFactor:
    return SealedFactor(user_id=user_id, kind="totp", sealed_secret=f"v1.{uid('sealed')}",
                        created_at=NOW, confirmed_at=NOW if confirmed else None)


# -- sessions.step_up -------------------------------------------------------------------


async def test_step_up_changes_the_authentication_and_nothing_else(
        any_store: Store, graph: Graph) -> None:
    async with any_store.unit_of_work() as uow:
        updated = await uow.sessions.step_up(
            graph.session.sid, acr="urn:tessera:acr:mfa", amr=("pwd", "otp"),
            auth_time=NOW + 60, browser_handle_hash="new-handle")
    expected = replace(graph.session, acr="urn:tessera:acr:mfa", amr=("pwd", "otp"),
                       auth_time=NOW + 60)
    assert updated == expected
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.sessions.get(graph.session.sid) == expected
        assert await uow.sessions.by_browser_handle("new-handle") == expected
        [family] = await uow.refresh.families_for_session(graph.session.sid)
        assert family == graph.family


async def test_step_up_without_a_handle_keeps_the_cookie(any_store: Store) -> None:
    user = a_user()
    session = a_session(user)
    async with any_store.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.sessions.add(session, browser_handle_hash="kept")
        await uow.sessions.step_up(session.sid, acr="a", amr=("pwd",), auth_time=NOW + 1)
    async with any_store.unit_of_work(read_only=True) as uow:
        found = await uow.sessions.by_browser_handle("kept")
    assert found is not None and found.acr == "a"


async def test_step_up_of_a_revoked_or_unknown_session_writes_nothing(
        any_store: Store, graph: Graph) -> None:
    async with any_store.unit_of_work() as uow:
        assert await uow.sessions.revoke(graph.session.sid, at=NOW, reason="test")
        assert await uow.sessions.step_up(graph.session.sid, acr="x", amr=(),
                                          auth_time=NOW + 5) is None
        assert await uow.sessions.step_up("no-such-sid", acr="x", amr=(),
                                          auth_time=NOW) is None
    async with any_store.unit_of_work(read_only=True) as uow:
        stored = await uow.sessions.get(graph.session.sid)
    assert stored is not None and stored.acr == graph.session.acr


# -- factors ------------------------------------------------------------------------------


async def test_a_pending_factor_is_replaced_until_confirmed(any_store: Store,
                                                            graph: Graph) -> None:
    user_id = graph.user.user_id
    first, second = a_factor(user_id), a_factor(user_id)
    async with any_store.unit_of_work() as uow:
        assert await uow.factors.get(user_id, "totp") is None
        assert await uow.factors.put_pending(first)
        assert await uow.factors.put_pending(replace(second, created_at=NOW + 10))
        assert await uow.factors.get(user_id, "totp") == replace(second, created_at=NOW + 10)
        assert await uow.factors.confirm(user_id, "totp", step=100, at=NOW + 20)
        assert not await uow.factors.confirm(user_id, "totp", step=101, at=NOW + 30)
        assert not await uow.factors.put_pending(a_factor(user_id))
        assert await uow.factors.get(user_id, "otherkind") is None
    async with any_store.unit_of_work(read_only=True) as uow:
        stored = await uow.factors.get(user_id, "totp")
    assert stored == replace(second, created_at=NOW + 10, confirmed_at=NOW + 20, last_step=100)


async def test_use_step_accepts_only_later_steps_of_a_confirmed_factor(
        any_store: Store, graph: Graph) -> None:
    user_id = graph.user.user_id
    async with any_store.unit_of_work() as uow:
        assert await uow.factors.put_pending(a_factor(user_id))
        assert not await uow.factors.use_step(user_id, "totp", 50)  # not confirmed yet
        assert await uow.factors.confirm(user_id, "totp", step=50, at=NOW)
        assert not await uow.factors.use_step(user_id, "totp", 50)  # replay
        assert not await uow.factors.use_step(user_id, "totp", 49)  # older
        assert await uow.factors.use_step(user_id, "totp", 52)
        assert not await uow.factors.use_step(user_id, "totp", 51)
        assert not await uow.factors.use_step("someone-else", "totp", 99)
    async with any_store.unit_of_work(read_only=True) as uow:
        stored = await uow.factors.get(user_id, "totp")
    assert stored is not None and stored.last_step == 52


async def test_replace_overwrites_a_confirmed_factor(any_store: Store, graph: Graph) -> None:
    user_id = graph.user.user_id
    fresh = a_factor(user_id, confirmed=True)
    async with any_store.unit_of_work() as uow:
        await uow.factors.replace(a_factor(user_id))
        assert await uow.factors.confirm(user_id, "totp", step=7, at=NOW)
        await uow.factors.replace(fresh)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.factors.get(user_id, "totp") == fresh  # last_step reset too


async def test_one_of_concurrent_uses_of_a_step_wins(any_store: Store, graph: Graph) -> None:
    user_id = graph.user.user_id
    async with any_store.unit_of_work() as uow:
        await uow.factors.replace(a_factor(user_id, confirmed=True))

    async def use() -> bool:
        async with any_store.unit_of_work() as uow:
            return await uow.factors.use_step(user_id, "totp", 1000)

    assert sorted(await asyncio.gather(*(use() for _ in range(8)))) == [False] * 7 + [True]
