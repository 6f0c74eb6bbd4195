"""Pruning keeps the store bounded without ever reusing a sequence number."""

from __future__ import annotations

from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.core.sessions import AuthorizationCode
from tessera.store.sql import SqlStore


def event(key: str, expires_at: float) -> RevocationEvent:
    return RevocationEvent(RevocationKind.TOKEN_REVOKED, key, at=1.0, expires_at=expires_at)


async def test_expired_events_go_but_the_newest_stays_and_seq_keeps_rising(
        any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        for key in ("a", "b", "c"):
            await uow.revocations.append(event(key, expires_at=10.0))
        await uow.revocations.append(event("live", expires_at=1000.0))
        await uow.revocations.append(event("newest-expired", expires_at=10.0))
    async with any_store.unit_of_work() as uow:
        assert await uow.revocations.prune(100.0) == 3
    async with any_store.unit_of_work() as uow:
        assert await uow.revocations.prune(100.0) == 0
        remaining = await uow.revocations.since(0, limit=10)
        assert [e.key for e in remaining] == ["live", "newest-expired"]
        assert await uow.revocations.last_seq() == 5
        assert await uow.revocations.append(event("next", 1000.0)) == 6
        seq, live = await uow.revocations.live(100.0)
    assert seq == 6 and [e.key for e in live] == ["live", "next"]


async def test_expired_codes_are_pruned(any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        for name, expires in (("old", 10.0), ("fresh", 1000.0)):
            await uow.codes.add(AuthorizationCode(
                code_hash=name, client_id="c", sid="s", user_id="u", redirect_uri="r",
                scope=frozenset(), code_challenge=None, nonce=None, expires_at=expires))
    async with any_store.unit_of_work() as uow:
        assert await uow.codes.prune(100.0) == 1
        assert await uow.codes.consume("fresh", at=50.0) is not None
        assert await uow.codes.consume("old", at=50.0) is None
