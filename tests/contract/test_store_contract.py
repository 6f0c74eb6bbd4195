"""The store contract (store/ports.py), run on every store through ``any_store``.

Each test names one guarantee a port verb documents: what it returns, what a repeat call
returns, and that a unit of work commits all of its writes or none of them.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from tessera.core.revocation import RevocationKind
from tessera.store.ports import AuditRecord, SealedKey, Store, StoreError
from tessera.store.sql import create_store
from tests.contract.conftest import (
    NOW,
    Graph,
    a_client,
    a_code,
    a_family,
    a_session,
    a_token,
    a_user,
    an_event,
    uid,
)

# -- unit of work ---------------------------------------------------------------------


async def test_a_unit_of_work_commits_every_write(any_store: Store) -> None:
    user, client = a_user(), a_client()
    async with any_store.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.clients.add(client)
        seq = await uow.revocations.append(an_event())
        await uow.audit.append([AuditRecord("token.issued", NOW, {"client_id": "app"})])
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.users.get(user.user_id) == user
        assert await uow.clients.get(client.client_id) == client
        assert await uow.revocations.last_seq() == seq
        assert [r.event for r in await uow.audit.query()] == ["token.issued"]


async def test_an_exception_inside_rolls_back_everything(any_store: Store,
                                                         graph: Graph) -> None:
    """State changes, their outbox rows and their audit rows go together (DESIGN §3)."""
    async with any_store.unit_of_work(read_only=True) as uow:
        seq_before = await uow.revocations.last_seq()
    stranger = a_user()
    with pytest.raises(RuntimeError, match="boom"):
        async with any_store.unit_of_work() as uow:
            assert await uow.sessions.revoke(graph.session.sid, at=NOW, reason="test")
            assert await uow.sessions.bump_version(graph.session.sid) == 2
            assert await uow.refresh.revoke_family(graph.family.family_id, at=NOW,
                                                   reason="test")
            assert await uow.refresh.rotate(graph.token.token_hash, successor_hash="next",
                                            at=NOW)
            await uow.users.add(stranger)
            await uow.revocations.append(an_event(graph.session.sid,
                                                  kind=RevocationKind.SESSION_REVOKED))
            await uow.audit.append([AuditRecord("session.revoked", NOW, {"sid": "x"})])
            raise RuntimeError("boom")
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.sessions.get(graph.session.sid) == graph.session
        assert await uow.refresh.get_family(graph.family.family_id) == graph.family
        assert await uow.refresh.get_token(graph.token.token_hash) == graph.token
        assert await uow.users.get(stranger.user_id) is None
        assert await uow.revocations.last_seq() == seq_before
        assert await uow.revocations.since(seq_before, limit=10) == []
        assert await uow.audit.query() == []


async def test_a_database_error_inside_is_a_store_error_and_rolls_back(
        any_store: Store) -> None:
    client, user = a_client(), a_user()
    async with any_store.unit_of_work() as uow:
        await uow.clients.add(client)
    with pytest.raises(StoreError):
        async with any_store.unit_of_work() as uow:
            await uow.users.add(user)
            await uow.clients.add(client)  # duplicate primary key
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.users.get(user.user_id) is None


async def test_a_read_only_unit_sees_committed_state(any_store: Store, graph: Graph) -> None:
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.sessions.get(graph.session.sid) == graph.session


async def test_an_unreachable_postgres_is_a_store_error() -> None:
    store = create_store("postgresql://postgres@127.0.0.1:1/test")
    try:
        for read_only in (False, True):
            with pytest.raises(StoreError):
                async with store.unit_of_work(read_only=read_only) as uow:
                    await uow.keys.all()
    finally:
        await store.close()


async def test_a_sqlite_file_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    threads_before = set(threading.enumerate())
    store = create_store(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'tessera.db'}")
    try:
        with pytest.raises(StoreError):
            async with store.unit_of_work() as uow:
                await uow.keys.all()
    finally:
        await store.close()
        # aiosqlite stops the worker thread of a failed connect without awaiting it; let
        # it finish while this loop still runs, or it reports into a closed loop later.
        for thread in set(threading.enumerate()) - threads_before:
            await asyncio.to_thread(thread.join, 5)


async def test_an_unmigrated_database_is_a_store_error(tmp_path: Path) -> None:
    store = create_store(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(StoreError):
            async with store.unit_of_work(read_only=True) as uow:
                await uow.clients.all()
    finally:
        await store.close()


# -- clients, users ---------------------------------------------------------------------


async def test_clients_round_trip_in_creation_order(any_store: Store) -> None:
    first = a_client(created_at=NOW)
    second = a_client(public=True, secret_hash=None, tenant_id=None, disabled=True,
                      created_at=NOW + 1)
    async with any_store.unit_of_work() as uow:
        await uow.clients.add(second)
        await uow.clients.add(first)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.clients.get(second.client_id) == second
        assert await uow.clients.get("nobody") is None
        assert await uow.clients.all() == [first, second]


async def test_users_are_found_by_id_and_by_username_in_their_tenant(any_store: Store) -> None:
    user = a_user(tenant_id="acme", username="alice")
    async with any_store.unit_of_work() as uow:
        await uow.users.add(user)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.users.get(user.user_id) == user
        assert await uow.users.by_username("acme", "alice") == user
        assert await uow.users.by_username("default", "alice") is None


async def test_a_username_is_unique_per_tenant(any_store: Store) -> None:
    alice = a_user(tenant_id="acme", username="alice")
    elsewhere = a_user(tenant_id="other", username="alice")
    async with any_store.unit_of_work() as uow:
        await uow.users.add(alice)
        with pytest.raises(StoreError, match="already exists"):
            await uow.users.add(a_user(tenant_id="acme", username="alice"))
        await uow.users.add(elsewhere)  # the unit of work is still usable
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.users.by_username("acme", "alice") == alice
        assert await uow.users.by_username("other", "alice") == elsewhere


# -- sessions ---------------------------------------------------------------------------


async def test_sessions_round_trip_and_are_found_by_browser_handle(any_store: Store) -> None:
    user = a_user()
    session = a_session(user)
    async with any_store.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.sessions.add(session, browser_handle_hash="bh-1")
        await uow.sessions.touch(session.sid, NOW + 10.25)
    async with any_store.unit_of_work(read_only=True) as uow:
        touched = replace(session, last_seen_at=NOW + 10.25)
        assert await uow.sessions.get(session.sid) == touched
        assert await uow.sessions.by_browser_handle("bh-1") == touched
        assert await uow.sessions.by_browser_handle("bh-2") is None
        assert await uow.sessions.active_for_user(user.user_id) == [touched]


async def test_session_revoke_is_true_only_once(any_store: Store, graph: Graph) -> None:
    sid = graph.session.sid
    async with any_store.unit_of_work() as uow:
        assert await uow.sessions.revoke(sid, at=NOW + 1, reason="logout") is True
        assert await uow.sessions.revoke(sid, at=NOW + 2, reason="again") is False
        assert await uow.sessions.revoke("no-such-sid", at=NOW, reason="x") is False
    async with any_store.unit_of_work() as uow:
        assert await uow.sessions.revoke(sid, at=NOW + 3, reason="later") is False
        revoked = await uow.sessions.get(sid)
        assert revoked is not None and not revoked.active
        assert (revoked.revoked_at, revoked.revoke_reason) == (NOW + 1, "logout")
        assert await uow.sessions.active_for_user(graph.user.user_id) == []


async def test_a_revoked_session_is_no_longer_found_by_its_browser_handle(
        any_store: Store) -> None:
    user = a_user()
    session = a_session(user)
    async with any_store.unit_of_work() as uow:
        await uow.users.add(user)
        await uow.sessions.add(session, browser_handle_hash="bh-gone")
        await uow.sessions.revoke(session.sid, at=NOW, reason="logout")
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.sessions.by_browser_handle("bh-gone") is None


async def test_bump_version_increments_and_returns_the_new_value(any_store: Store,
                                                                 graph: Graph) -> None:
    sid = graph.session.sid
    async with any_store.unit_of_work() as uow:
        assert await uow.sessions.bump_version(sid) == 2
        assert await uow.sessions.bump_version(sid) == 3
        assert await uow.sessions.bump_version("no-such-sid") is None
    async with any_store.unit_of_work() as uow:
        assert await uow.sessions.bump_version(sid) == 4
        session = await uow.sessions.get(sid)
        assert session is not None and session.sv == 4


# -- authorization codes ----------------------------------------------------------------


async def test_consume_reports_first_use_once(any_store: Store, graph: Graph) -> None:
    code = a_code(graph.session)
    async with any_store.unit_of_work() as uow:
        await uow.codes.add(code)
    async with any_store.unit_of_work() as uow:
        first = await uow.codes.consume(code.code_hash, at=NOW + 1)
        assert first == (replace(code, consumed_at=NOW + 1), True)
    async with any_store.unit_of_work() as uow:
        replay = await uow.codes.consume(code.code_hash, at=NOW + 2)
        assert replay == (replace(code, consumed_at=NOW + 1), False)
        assert await uow.codes.consume("no-such-code", at=NOW) is None


async def test_a_code_remembers_the_family_it_started(any_store: Store, graph: Graph) -> None:
    code = a_code(graph.session)
    async with any_store.unit_of_work() as uow:
        await uow.codes.add(code)
        await uow.codes.attach_family(code.code_hash, graph.family.family_id)
    async with any_store.unit_of_work() as uow:
        consumed = await uow.codes.consume(code.code_hash, at=NOW)
        assert consumed is not None and consumed[0].family_id == graph.family.family_id


# -- refresh families and tokens --------------------------------------------------------


async def test_refresh_families_and_tokens_round_trip(any_store: Store, graph: Graph) -> None:
    second = a_family(graph.session)
    async with any_store.unit_of_work() as uow:
        await uow.refresh.add_family(second)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.refresh.get_family(graph.family.family_id) == graph.family
        assert await uow.refresh.get_token(graph.token.token_hash) == graph.token
        assert await uow.refresh.get_family("nope") is None
        assert await uow.refresh.get_token("nope") is None
        families = await uow.refresh.families_for_session(graph.session.sid)
        assert sorted(f.family_id for f in families) == sorted(
            [graph.family.family_id, second.family_id])


async def test_get_chain_reads_token_family_and_session_at_once(any_store: Store,
                                                                 graph: Graph) -> None:
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.refresh.get_chain(graph.token.token_hash) == (
            graph.token, graph.family, graph.session)
        assert await uow.refresh.get_chain("nope") is None
    async with any_store.unit_of_work() as uow:
        await uow.sessions.revoke(graph.session.sid, at=NOW + 5, reason="test")
        await uow.refresh.revoke_family(graph.family.family_id, at=NOW + 5, reason="test")
    async with any_store.unit_of_work(read_only=True) as uow:
        chain = await uow.refresh.get_chain(graph.token.token_hash)
        assert chain is not None
        assert chain[1].revoked_at == NOW + 5 and not chain[2].active
        assert chain == (graph.token, await uow.refresh.get_family(graph.family.family_id),
                         await uow.sessions.get(graph.session.sid))


async def test_rotate_wins_once_and_records_the_successor(any_store: Store,
                                                          graph: Graph) -> None:
    digest = graph.token.token_hash
    successor = a_token(graph.family, generation=1)
    async with any_store.unit_of_work() as uow:
        assert await uow.refresh.rotate(digest, successor_hash=successor.token_hash,
                                        at=NOW + 1) is True
        await uow.refresh.add_token(successor)
        assert await uow.refresh.rotate(digest, successor_hash="other", at=NOW + 2) is False
    async with any_store.unit_of_work() as uow:
        assert await uow.refresh.rotate(digest, successor_hash="other", at=NOW + 3) is False
        assert await uow.refresh.rotate("no-such-token", successor_hash="x", at=NOW) is False
        rotated = await uow.refresh.get_token(digest)
        assert rotated == replace(graph.token, rotated_at=NOW + 1,
                                  successor_hash=successor.token_hash)
        assert await uow.refresh.get_token(successor.token_hash) == successor


async def test_revoke_family_is_true_only_once(any_store: Store, graph: Graph) -> None:
    family_id = graph.family.family_id
    async with any_store.unit_of_work() as uow:
        assert await uow.refresh.revoke_family(family_id, at=NOW, reason="reuse") is True
        assert await uow.refresh.revoke_family(family_id, at=NOW, reason="reuse") is False
    async with any_store.unit_of_work() as uow:
        assert await uow.refresh.revoke_family(family_id, at=NOW + 1, reason="x") is False
        assert await uow.refresh.revoke_family("no-such-family", at=NOW, reason="x") is False
        assert await uow.refresh.get_family(family_id) == replace(
            graph.family, revoked_at=NOW, revoke_reason="reuse")


# -- revocation log (outbox) ------------------------------------------------------------


async def test_revocation_sequence_is_strictly_increasing(any_store: Store) -> None:
    seqs: list[int] = []
    async with any_store.unit_of_work(read_only=True) as uow:
        start = await uow.revocations.last_seq()
    for _ in range(3):
        async with any_store.unit_of_work() as uow:
            seqs += [await uow.revocations.append(an_event()) for _ in range(2)]
    assert seqs == sorted(set(seqs)) and seqs[0] > start
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.revocations.last_seq() == seqs[-1]


async def test_since_returns_later_events_in_order_with_their_data(any_store: Store) -> None:
    async with any_store.unit_of_work(read_only=True) as uow:
        start = await uow.revocations.last_seq()
    events = [an_event(kind=kind, data={"reason": kind, "n": i, "nested": {"sv": i}})
              for i, kind in enumerate(sorted(RevocationKind.ALL))]
    async with any_store.unit_of_work() as uow:
        seqs = [await uow.revocations.append(e) for e in events]
    async with any_store.unit_of_work(read_only=True) as uow:
        got = await uow.revocations.since(start, limit=100)
        assert got == [replace(e, seq=s) for e, s in zip(events, seqs, strict=True)]
        assert await uow.revocations.since(seqs[2], limit=2) == got[3:5]
        assert await uow.revocations.since(seqs[-1], limit=100) == []


async def test_a_rolled_back_append_never_appears(any_store: Store) -> None:
    async with any_store.unit_of_work(read_only=True) as uow:
        start = await uow.revocations.last_seq()
    with pytest.raises(RuntimeError):
        async with any_store.unit_of_work() as uow:
            await uow.revocations.append(an_event("lost"))
            raise RuntimeError
    async with any_store.unit_of_work() as uow:
        kept = await uow.revocations.append(an_event("kept"))
    async with any_store.unit_of_work(read_only=True) as uow:
        assert [(e.key, e.seq) for e in await uow.revocations.since(start, limit=10)] == [
            ("kept", kept)]


async def test_is_token_revoked_only_for_token_revocations(any_store: Store) -> None:
    jti, sid = uid("jti"), uid("sid")
    async with any_store.unit_of_work() as uow:
        assert await uow.revocations.is_token_revoked(jti) is False
        await uow.revocations.append(an_event(jti))
        await uow.revocations.append(an_event(sid, kind=RevocationKind.SESSION_REVOKED))
        assert await uow.revocations.is_token_revoked(jti) is True  # own writes
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.revocations.is_token_revoked(jti) is True
        assert await uow.revocations.is_token_revoked(sid) is False


# -- audit, keys ------------------------------------------------------------------------


async def test_audit_query_is_newest_first_filtered_and_limited(any_store: Store) -> None:
    records = [AuditRecord("token.issued", NOW, {"n": 0}),
               AuditRecord("access.denied", NOW + 1, {"n": 1, "rule": {"aud": ["a"]}}),
               AuditRecord("token.issued", NOW + 2, {"n": 2})]
    async with any_store.unit_of_work() as uow:
        await uow.audit.append(records[:2])
        await uow.audit.append([])
    async with any_store.unit_of_work() as uow:
        await uow.audit.append(records[2:])
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.audit.query() == records[::-1]
        assert await uow.audit.query(event="token.issued") == [records[2], records[0]]
        assert await uow.audit.query(limit=1) == [records[2]]
        assert await uow.audit.query(event="nothing") == []


async def test_keys_are_added_listed_in_creation_order_and_change_state(
        any_store: Store) -> None:
    active = SealedKey(kid=uid("kid"), alg="RS256", state="active", sealed_private="s1",
                       created_at=NOW, changed_at=NOW)
    nxt = SealedKey(kid=uid("kid"), alg="EdDSA", state="next", sealed_private="s2",
                    created_at=NOW + 1, changed_at=NOW + 1)
    async with any_store.unit_of_work() as uow:
        await uow.keys.add(nxt)
        await uow.keys.add(active)
    async with any_store.unit_of_work() as uow:
        assert await uow.keys.all() == [active, nxt]
        await uow.keys.set_state(active.kid, "retiring", at=NOW + 5)
        await uow.keys.set_state(nxt.kid, "active", at=NOW + 5)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.keys.all() == [
            replace(active, state="retiring", changed_at=NOW + 5),
            replace(nxt, state="active", changed_at=NOW + 5)]
