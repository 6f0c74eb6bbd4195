"""The refresh hot path's store contract (``RefreshRotations``) on every store: one read
with everything the grant judges on, one atomic write that rotates only a live, unrotated
token, and audit rows that join the hash chain — also when many rotations of concurrent
requests share one write (group commit)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tessera.core.audit_chain import find_breaks
from tessera.core.refresh import RefreshToken
from tessera.core.session_bounds import SessionPolicy
from tessera.core.signals import RiskObservation
from tessera.core.tenants import Tenant
from tessera.store.ports import AuditRecord, RefreshRead, RefreshRotation
from tessera.store.sql import SqlStore
from tests.contract.conftest import NOW, Graph, seed, uid

AT = NOW + 10


def rotation_of(graph: Graph, *, token: RefreshToken | None = None,
                observation: RiskObservation | None = None) -> RefreshRotation:
    token = token or graph.token
    successor = RefreshToken(token_hash=uid("rt"), family_id=token.family_id,
                             generation=token.generation + 1, issued_at=int(AT),
                             expires_at=AT + 3600, access_jti=uid("jti"))
    return RefreshRotation(
        token_hash=token.token_hash, successor=successor, sid=graph.session.sid, at=AT,
        audit=AuditRecord("token.refreshed", AT, {"token_hash": token.token_hash,
                                                  "new_token_hash": successor.token_hash,
                                                  "generation": successor.generation,
                                                  "scopes": "api:read openid", "n": 1.5}),
        observation=observation)


async def rotate(store: SqlStore, rotation: RefreshRotation) -> bool:
    async with store.refresh_rotations() as rotations:
        return await rotations.rotate(rotation)


async def chain(store: SqlStore) -> list[tuple[int, str, float, dict[str, object], str | None]]:
    async with store.unit_of_work(read_only=True) as uow:
        rows = []
        after = 0
        while batch := await uow.audit.scan(after_id=after):
            rows += [(r.id, r.record.event, r.record.at, r.record.fields, r.chain_hash)
                     for r in batch]
            after = batch[-1].id
        return rows


async def test_the_read_holds_the_chain_the_standing_the_roles_and_the_policy(
        any_store: SqlStore, graph: Graph) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.tenants.add(Tenant(graph.user.tenant_id, "Default", NOW))
        await uow.roles.grant(graph.user.user_id, "support", at=NOW, by="test")
        await uow.roles.grant(graph.user.user_id, "tenant_admin", at=NOW, by="test")
        await uow.session_policies.put(SessionPolicy(graph.session.tenant_id,
                                                     idle_timeout=60.0, updated_at=NOW))
    async with any_store.refresh_rotations() as rotations:
        snapshot = await rotations.read(graph.token.token_hash)
        assert await rotations.read(uid("unknown")) is None
    assert snapshot is not None
    assert (snapshot.token, snapshot.family, snapshot.session) == (
        graph.token, graph.family, graph.session)
    assert snapshot.user == graph.user
    assert snapshot.tenant is not None and snapshot.tenant.active
    assert snapshot.roles == {"support", "tenant_admin"}
    assert snapshot.session_policy is not None and snapshot.session_policy.idle_timeout == 60
    assert (snapshot.refreshes_in_burst, snapshot.last_refresh, snapshot.marks) == (
        0, None, frozenset())


async def test_the_read_counts_the_familys_risk_observations(
        any_store: SqlStore, graph: Graph) -> None:
    def seen(kind: str, at: float, address: str) -> RiskObservation:
        return RiskObservation(kind=kind, at=at, tenant_id="default",
                               user_id=graph.user.user_id, family_id=graph.family.family_id,
                               address=address, user_agent=f"agent {address}")

    async with any_store.unit_of_work() as uow:
        for i in range(5):  # at -100, -70, -40, -10, +20; the newest from 10.0.0.4
            await uow.signals.observe(seen("refresh", NOW - 100 + 30 * i, f"10.0.0.{i}"))
        await uow.signals.observe(seen("d:0", NOW - 50, "x"))
        await uow.signals.observe(seen("step_up", NOW - 5000, "x"))
    read = RefreshRead(recent_since=NOW - 1000, recent_limit=3, burst_since=NOW - 80,
                       marks=(("step_up", 0.0), ("d:0", NOW - 10), ("d:2", 0.0)))
    async with any_store.refresh_rotations() as rotations:
        snapshot = await rotations.read(graph.token.token_hash, read)
    assert snapshot is not None
    # four are at or after -80, but only the newest three (by id) count
    assert snapshot.refreshes_in_burst == 3
    assert snapshot.last_refresh == ("10.0.0.4", "agent 10.0.0.4")
    assert snapshot.marks == {"step_up"}  # d:0 is older than asked; d:2 absent


async def test_a_rotation_writes_everything_once_and_chains_its_audit_row(
        any_store: SqlStore, graph: Graph) -> None:
    observation = RiskObservation(kind="refresh", at=AT, tenant_id="default",
                                  user_id=graph.user.user_id,
                                  family_id=graph.family.family_id, address="10.1.2.0",
                                  user_agent="agent")
    first = rotation_of(graph, observation=observation)
    assert await rotate(any_store, first)
    assert not await rotate(any_store, rotation_of(graph))  # rotated already
    async with any_store.unit_of_work(read_only=True) as uow:
        old = await uow.refresh.get_token(graph.token.token_hash)
        new = await uow.refresh.get_token(first.successor.token_hash)
        session = await uow.sessions.get(graph.session.sid)
        seen = await uow.signals.observations(since=0.0, family_id=graph.family.family_id)
    assert old is not None and old.rotated_at == AT
    assert old.successor_hash == first.successor.token_hash
    assert new == first.successor
    assert session is not None and session.last_seen_at == AT
    assert [(o.kind, o.address, o.user_agent) for o in seen] == [
        ("refresh", "10.1.2.0", "agent")]
    rows = await chain(any_store)
    assert [r[3] for r in rows if r[1] == "token.refreshed"] == [first.audit.fields]
    assert find_breaks(rows)[0] == []


async def test_nothing_is_written_for_a_revoked_family_or_session(
        any_store: SqlStore) -> None:
    revoked_family, revoked_session = await seed(any_store), await seed(any_store)
    async with any_store.unit_of_work() as uow:
        await uow.refresh.revoke_family(revoked_family.family.family_id, at=NOW, reason="t")
        await uow.sessions.revoke(revoked_session.session.sid, at=NOW, reason="t")
    for graph in (revoked_family, revoked_session):
        rotation = rotation_of(graph)
        assert not await rotate(any_store, rotation)
        async with any_store.unit_of_work(read_only=True) as uow:
            assert (await uow.refresh.get_token(graph.token.token_hash)) == graph.token
            assert await uow.refresh.get_token(rotation.successor.token_hash) is None
    assert not [r for r in await chain(any_store) if r[1] == "token.refreshed"]


async def test_concurrent_rotations_share_writes_one_wins_per_token_and_the_chain_holds(
        any_store: SqlStore) -> None:
    graphs = [await seed(any_store) for _ in range(12)]
    async with any_store.unit_of_work() as uow:  # other writers extend the chain too
        await uow.audit.append([AuditRecord("other", NOW, {"i": 0})])
    rotations = [rotation_of(g) for g in graphs]
    rivals = [replace(rotation_of(g), audit=AuditRecord("rival", AT, {"i": i}))
              for i, g in enumerate(graphs[:4])]  # the same tokens, other successors
    batches_before = any_store.rotations.batches

    async def other_writer(i: int) -> bool:
        async with any_store.unit_of_work() as uow:
            await uow.audit.append([AuditRecord("other", NOW, {"i": i})])
        return True

    results = await asyncio.gather(*(rotate(any_store, r) for r in rotations + rivals),
                                   *(other_writer(i) for i in range(1, 4)))
    won = results[:len(rotations)]
    rival_won = results[len(rotations):len(rotations) + len(rivals)]
    assert all(won[len(rivals):])
    assert [a != b for a, b in zip(won, rival_won, strict=False)] == [True] * len(rivals)
    assert any_store.rotations.batches - batches_before < len(rotations) + len(rivals)
    rows = await chain(any_store)
    assert sum(1 for r in rows if r[1] in ("token.refreshed", "rival")) == len(rotations)
    assert sum(1 for r in rows if r[1] == "other") == 4
    assert find_breaks(rows)[0] == []
    async with any_store.unit_of_work(read_only=True) as uow:  # one successor per token
        for rotation, rival in zip(rotations, rivals, strict=False):
            old = await uow.refresh.get_token(rotation.token_hash)
            assert old is not None and old.successor_hash in (
                rotation.successor.token_hash, rival.successor.token_hash)
            kept = [await uow.refresh.get_token(r.successor.token_hash)
                    for r in (rotation, rival)]
            assert [k is not None for k in kept].count(True) == 1


async def test_a_connection_found_dead_is_replaced_without_an_error(
        any_store: SqlStore, graph: Graph) -> None:
    """PostgreSQL: the hot path's pool does not ping on checkout; a dead connection (the
    server restarted, an idle timeout) costs one retry, not a failed request."""
    if any_store.engine.dialect.name != "postgresql":
        return  # SQLite has no connection to lose
    from sqlalchemy import text

    hot = await any_store._hot_pool()
    async with hot.acquire() as conn:  # the pool's one connection
        pid = await conn.fetchval("SELECT pg_backend_pid()")
    async with any_store.engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await asyncio.sleep(0.2)
    async with any_store.refresh_rotations() as rotations:
        snapshot = await rotations.read(graph.token.token_hash)
    assert snapshot is not None and snapshot.token == graph.token
    async with hot.acquire() as conn:  # the same for the write
        pid = await conn.fetchval("SELECT pg_backend_pid()")
    async with any_store.engine.connect() as admin:
        await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await asyncio.sleep(0.2)
    assert await rotate(any_store, rotation_of(graph))
