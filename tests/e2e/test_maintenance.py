"""Housekeeping: expired revocation events and silent verifiers are pruned, each table in
its own short transaction, and nothing a live token still needs is touched."""

from __future__ import annotations

from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.identity.compose import Identity
from tessera.identity.maintenance import prune_expired
from tessera.store.ports import VerifierReport


async def test_expired_events_and_long_silent_verifiers_are_pruned(identity: Identity) -> None:
    clock = identity.clock
    assert isinstance(clock, FixedClock)
    now = clock.now()
    async with identity.store.unit_of_work() as uow:
        for key, expires_at in (("old", now + 10), ("older", now + 20), ("live", now + 1e6)):
            await uow.revocations.append(RevocationEvent(
                RevocationKind.TOKEN_REVOKED, key, at=now, expires_at=expires_at))
        await uow.verifiers.report(VerifierReport(
            client_id="feed", verifier_id="gone", service="orders", cursor=0,
            reported_at=now, first_seen=now))
    clock.advance(identity.settings.verifiers.forget_seconds + 30)
    writes = 0
    unit_of_work = identity.store.unit_of_work

    def counting(*, read_only: bool = False):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += not read_only
        return unit_of_work(read_only=read_only)

    identity.store.unit_of_work = counting  # type: ignore[method-assign]
    try:
        events, codes = await prune_expired(identity)
    finally:
        identity.store.unit_of_work = unit_of_work  # type: ignore[method-assign]
    assert (events, codes) == (2, 0)
    assert writes >= 7, "one short transaction per table, not one holding the lock for all"
    async with identity.store.unit_of_work(read_only=True) as uow:
        assert [e.key for e in await uow.revocations.since(0, limit=10)] == ["live"]
        assert await uow.verifiers.verifiers() == []
