"""Store contract for session bounds and device authorization (migration 0009), on every
store: tenant session policies (upsert, unset fields), the address and device client of
a session, device authorization requests by hashed codes — decided once, polled,
slowed down, consumed once, pruned. Conditional verbs are raced."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from tessera.core.device import APPROVED, CONSUMED, DENIED, PENDING, DeviceCode
from tessera.core.secrets import token_hash
from tessera.core.session_bounds import SessionPolicy
from tessera.store.ports import Store, StoreError, UnitOfWork
from tests.contract.conftest import NOW, a_session, a_user, uid
from tests.contract.test_store_races import race


def a_device_code(**changes: object) -> DeviceCode:
    code = DeviceCode(device_code_hash=token_hash(uid("device")),
                      user_code_hash=token_hash(uid("user")), client_id="tv",
                      tenant_id="default", scope=frozenset({"openid", "api:read"}),
                      audience=("https://api.example",), created_at=NOW,
                      expires_at=NOW + 600, interval=5, client_address="192.0.2.7")
    return replace(code, **changes)  # type: ignore[arg-type]


async def test_session_policies_are_upserted_per_tenant(any_store: Store) -> None:
    tenant = uid("tenant")
    policy = SessionPolicy(tenant, idle_timeout=1800.0, absolute_timeout=None,
                           max_sessions=5, on_limit="end_oldest", updated_at=NOW)
    async with any_store.unit_of_work() as uow:
        assert await uow.session_policies.get(tenant) is None
        await uow.session_policies.put(policy)
        assert await uow.session_policies.get(tenant) == policy
    changed = replace(policy, idle_timeout=None, max_sessions=0, on_limit=None,
                      updated_at=NOW + 1)
    async with any_store.unit_of_work() as uow:
        await uow.session_policies.put(changed)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.session_policies.get(tenant) == changed
        assert tenant in [p.tenant_id for p in await uow.session_policies.all()]


async def test_a_session_keeps_its_address_and_device_client(any_store: Store) -> None:
    user = a_user()
    device = replace(a_session(user), client_address="2001:db8::1", device_client_id="tv")
    browser = a_session(user)
    async with any_store.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.sessions.add(device, browser_handle_hash=None)
        await uow.sessions.add(browser, browser_handle_hash=token_hash(uid("h")))
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.sessions.get(device.sid) == device
        stored = await uow.sessions.get(browser.sid)
        listed = await uow.sessions.search(user_ids=[user.user_id])
    assert stored is not None and stored.client_address is None
    assert stored.device_client_id is None
    assert {s.sid for s in listed} == {device.sid, browser.sid}


async def test_device_codes_are_found_by_either_hash_only(any_store: Store) -> None:
    code = a_device_code()
    async with any_store.unit_of_work() as uow:
        await uow.device_codes.add(code)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.device_codes.get(code.device_code_hash) == code
        assert await uow.device_codes.by_user_code(code.user_code_hash) == code
        assert await uow.device_codes.get(code.user_code_hash) is None
        assert await uow.device_codes.by_user_code(code.device_code_hash) is None


async def test_a_taken_user_code_is_a_store_error(any_store: Store) -> None:
    code = a_device_code()
    async with any_store.unit_of_work() as uow:
        await uow.device_codes.add(code)
    with pytest.raises(StoreError):
        async with any_store.unit_of_work() as uow:
            await uow.device_codes.add(a_device_code(user_code_hash=code.user_code_hash))
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.device_codes.get(code.device_code_hash) == code


async def test_decide_only_a_pending_unexpired_request(any_store: Store) -> None:
    approved, denied, late = a_device_code(), a_device_code(), a_device_code()
    async with any_store.unit_of_work() as uow:
        for code in (approved, denied, late):
            await uow.device_codes.add(code)
        assert await uow.device_codes.decide(approved.user_code_hash, approve=True,
                                             user_id="u1", sid="s1", at=NOW + 1)
        assert not await uow.device_codes.decide(approved.user_code_hash, approve=False,
                                                 user_id="u1", sid=None, at=NOW + 2)
        assert await uow.device_codes.decide(denied.user_code_hash, approve=False,
                                             user_id="u1", sid="ignored", at=NOW + 1)
        assert not await uow.device_codes.decide(late.user_code_hash, approve=True,
                                                 user_id="u1", sid="s", at=NOW + 600)
        assert not await uow.device_codes.decide(token_hash("unknown"), approve=True,
                                                 user_id="u1", sid="s", at=NOW)
    async with any_store.unit_of_work(read_only=True) as uow:
        got = await uow.device_codes.get(approved.device_code_hash)
        refused = await uow.device_codes.get(denied.device_code_hash)
        pending = await uow.device_codes.get(late.device_code_hash)
    assert got is not None and (got.status, got.user_id, got.sid, got.decided_at) == (
        APPROVED, "u1", "s1", NOW + 1)
    assert refused is not None and (refused.status, refused.sid) == (DENIED, None)
    assert pending is not None and pending.status == PENDING


async def test_exactly_one_concurrent_decision_wins(any_store: Store) -> None:
    code = a_device_code()
    async with any_store.unit_of_work() as uow:
        await uow.device_codes.add(code)

    async def decide(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> bool:
        await uow.device_codes.by_user_code(code.user_code_hash)
        await reads_done()
        return await uow.device_codes.decide(code.user_code_hash, approve=True,
                                             user_id="u", sid=uid("sid"), at=NOW)

    assert sorted(await race(any_store, decide)) == [False] * 7 + [True]


async def test_poll_returns_the_previous_poll_and_slow_down_raises_the_interval(
        any_store: Store) -> None:
    code = a_device_code()
    async with any_store.unit_of_work() as uow:
        await uow.device_codes.add(code)
        first = await uow.device_codes.poll(code.device_code_hash, at=NOW + 5)
        second = await uow.device_codes.poll(code.device_code_hash, at=NOW + 7)
        await uow.device_codes.slow_down(code.device_code_hash, by=5)
        assert await uow.device_codes.poll(token_hash("unknown"), at=NOW) is None
    async with any_store.unit_of_work(read_only=True) as uow:
        now = await uow.device_codes.get(code.device_code_hash)
    assert first is not None and first.last_polled_at is None
    assert second is not None and second.last_polled_at == NOW + 5
    assert now is not None and (now.last_polled_at, now.interval) == (NOW + 7, 10)


async def test_an_approved_request_is_consumed_once(any_store: Store) -> None:
    code = a_device_code()
    pending = a_device_code()
    async with any_store.unit_of_work() as uow:
        await uow.device_codes.add(code)
        await uow.device_codes.add(pending)
        await uow.device_codes.decide(code.user_code_hash, approve=True, user_id="u",
                                      sid="s", at=NOW)
        assert not await uow.device_codes.consume(pending.device_code_hash, at=NOW)

    async def consume(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> bool:
        await uow.device_codes.get(code.device_code_hash)
        await reads_done()
        return await uow.device_codes.consume(code.device_code_hash, at=NOW + 1)

    assert sorted(await race(any_store, consume)) == [False] * 7 + [True]
    async with any_store.unit_of_work(read_only=True) as uow:
        used = await uow.device_codes.get(code.device_code_hash)
    assert used is not None and used.status == CONSUMED


async def test_prune_deletes_only_expired_requests(any_store: Store) -> None:
    old = a_device_code(expires_at=NOW - 10)
    live = a_device_code()
    async with any_store.unit_of_work() as uow:
        await uow.device_codes.add(old)
        await uow.device_codes.add(live)
        assert await uow.device_codes.prune(NOW) >= 1
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.device_codes.get(old.device_code_hash) is None
        assert await uow.device_codes.get(live.device_code_hash) == live


async def test_holding_the_user_serialises_count_then_add(any_store: Store) -> None:
    """The per-user session limit: of 8 concurrent "count, then add if below 3", exactly 3
    add (``hold_user`` makes the count and the insert one step per user)."""
    user = a_user()
    async with any_store.unit_of_work() as uow:
        await uow.users.add(user)

    async def sign_in(uow: UnitOfWork, reads_done: Callable[[], Awaitable[None]]) -> bool:
        await reads_done()
        await uow.sessions.hold_user(user.user_id)
        if len(await uow.sessions.active_for_user(user.user_id)) >= 3:
            return False
        await uow.sessions.add(a_session(user), browser_handle_hash=None)
        return True

    assert sorted(await race(any_store, sign_in)) == [False] * 5 + [True] * 3
    async with any_store.unit_of_work(read_only=True) as uow:
        assert len(await uow.sessions.active_for_user(user.user_id)) == 3
