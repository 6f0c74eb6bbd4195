"""Single-session revocations that arrive together commit together (application/revoker.py),
each with its own outbox event and audit record; every caller learns its own outcome only
after the commit. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tessera.application import admin
from tessera.core.clock import FixedClock
from tessera.core.sessions import Session
from tessera.identity.compose import Identity
from tessera.settings import Settings
from tessera.store.sql import SqlStore
from tests.conftest import make_identity


@pytest.fixture
async def identity(settings: Settings, any_store: SqlStore,
                   clock: FixedClock) -> AsyncIterator[Identity]:
    built = await make_identity(settings, any_store, clock)
    yield built
    await built.admin.revoker.aclose()
    await built.audit.aclose()


async def open_sessions(identity: Identity, count: int, *, actor_sid: str | None = None
                        ) -> list[str]:
    user = await admin.create_user(identity.admin, username=f"u-{actor_sid or 'main'}",
                                   password="long password")
    now = identity.clock.now()
    sids = [f"{actor_sid or 'sid'}-{i}" for i in range(count)]
    async with identity.store.unit_of_work() as uow:
        for sid in sids:
            await uow.sessions.add(Session(sid, user.user_id, user.tenant_id, 1, "acr", ("pwd",),
                                           now, now, now, actor_sid=actor_sid),
                                   browser_handle_hash=None)
    return sids


async def outbox(identity: Identity) -> list[tuple[str, str]]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        return [(e.kind, e.key) for e in await uow.revocations.since(0, limit=1000)]


async def test_concurrent_revokes_share_commits_and_each_gets_its_event(
        identity: Identity) -> None:
    sids = await open_sessions(identity, 12)
    child = (await open_sessions(identity, 1, actor_sid=sids[0]))[0]
    results = await asyncio.gather(
        *(admin.revoke(identity.admin, sid=sid, reason="test", actor="op") for sid in sids),
        admin.revoke(identity.admin, sid=sids[3], reason="test", actor="op"),  # twice
        admin.revoke(identity.admin, sid="no-such-session", reason="test", actor="op"))
    assert results[:12] == [1] * 12 and results[12:] == [0, 0]
    assert identity.admin.revoker.batches < 12, "revocations that queued up shared a commit"
    events = await outbox(identity)
    assert sorted(key for kind, key in events if kind == "session.revoked") == \
        sorted([*sids, child]), "one event per revoked session, the impersonation's too"
    async with identity.store.unit_of_work(read_only=True) as uow:
        for sid in [*sids, child]:
            session = await uow.sessions.get(sid)
            assert session is not None and session.revoked_at is not None
        audited = await uow.audit.query(event="session.revoked", limit=100)
    assert sorted(r.fields["sid"] for r in audited) == sorted([*sids, child])
    assert all(r.fields["user_id"] and r.fields["tenant_id"] for r in audited)


async def test_a_failing_batch_is_retried_one_by_one(identity: Identity,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared transaction fails, then the first request's own: that error reaches
    only the first request; the others are revoked."""
    sids = await open_sessions(identity, 4)
    unit_of_work = type(identity.store).unit_of_work
    calls = 0

    def failing_first(self: SqlStore, *args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("database went away")
        return unit_of_work(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(type(identity.store), "unit_of_work", failing_first)
    results = await asyncio.gather(
        *(admin.revoke(identity.admin, sid=sid, reason="test", actor="op") for sid in sids),
        return_exceptions=True)
    assert isinstance(results[0], RuntimeError) and results[1:] == [1, 1, 1]
    assert calls == 1 + len(sids)
