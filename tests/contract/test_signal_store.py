"""The signal repository on every store: logout registrations, streams and subjects,
the signal outbox and cursors (one winner), idempotent enqueue, race-safe claims with
leases, settle/requeue, poll acknowledgement, risk observations, pruning."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tessera.core.signals import (
    CAEP_ASSURANCE_LEVEL_CHANGE,
    CAEP_CREDENTIAL_CHANGE,
    CAEP_TOKEN_CLAIMS_CHANGE,
    Delivery,
    LogoutTarget,
    RiskObservation,
    SignalEvent,
    Stream,
)
from tessera.store.sql import SqlStore

T = 1_800_000_000.0


def delivery(dedupe: str, *, target: str = "c1", mode: str = "push",
             jti: str | None = None) -> Delivery:
    return Delivery(dedupe=dedupe, channel="logout", target=target, mode=mode,
                    jti=jti or f"jti-{dedupe}", token=f"token-{dedupe}",
                    event="backchannel-logout", tenant_id="default", user_id="u1",
                    created_at=T, next_at=T, expires_at=T + 300)


async def test_logout_registrations(any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.signals.set_logout("c1", LogoutTarget("c1", "https://rp/logout", True))
        await uow.signals.set_logout("c2", LogoutTarget("c2", "https://rp2/logout"))
        await uow.signals.set_logout("c2", None)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.signals.logout_targets(["c1", "c2", "c3"]) == {
            "c1": LogoutTarget("c1", "https://rp/logout", True)}
        assert await uow.signals.logout_targets([]) == {}


async def test_streams_and_subjects(any_store: SqlStore) -> None:
    stream = Stream("s1", "c1", "default", "c1", "urn:ietf:rfc:8935", "https://r/e",
                    ("e1",), created_at=T, updated_at=T)
    async with any_store.unit_of_work() as uow:
        await uow.signals.add_stream(stream)
        await uow.signals.add_subject("s1", "k1", {"format": "opaque", "id": "x"})
        await uow.signals.add_subject("s1", "k1", {"format": "opaque", "id": "x"})
        await uow.signals.enqueue([delivery("a", target="s1")])
    async with any_store.unit_of_work() as uow:
        assert await uow.signals.get_stream("s1") == stream
        assert await uow.signals.replace_stream(replace(stream, status="paused"))
        assert not await uow.signals.replace_stream(replace(stream, stream_id="nope"))
        assert await uow.signals.stream_subjects("s1") == {"k1"}
        assert await uow.signals.remove_subject("s1", "k1")
        assert not await uow.signals.remove_subject("s1", "k1")
        assert [s.status for s in await uow.signals.streams(client_id="c1")] == ["paused"]
    async with any_store.unit_of_work() as uow:
        assert await uow.signals.delete_stream("s1")
        assert not await uow.signals.delete_stream("s1")
        assert await uow.signals.streams() == []


CAEP_KINDS = (CAEP_TOKEN_CLAIMS_CHANGE, CAEP_ASSURANCE_LEVEL_CHANGE, CAEP_CREDENTIAL_CHANGE)


async def test_cursors_move_once_and_signal_events_read_in_order(any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        for n in range(3):
            # kinds are the CAEP event-type URIs, longer than an identifier column
            await uow.signals.record(SignalEvent(CAEP_KINDS[n], "default", f"u{n}", T + n,
                                                 {"n": n}))
    async with any_store.unit_of_work() as uow:
        assert await uow.signals.cursor("signals") == 0
        events = await uow.signals.events_since(0, limit=10)
        assert [e.data["n"] for e in events] == [0, 1, 2]
        assert [e.kind for e in events] == list(CAEP_KINDS)
        assert await uow.signals.advance("signals", old=0, new=2)
        assert not await uow.signals.advance("signals", old=0, new=3)
    async with any_store.unit_of_work() as uow:
        assert await uow.signals.cursor("signals") == 2
        assert await uow.signals.advance("signals", old=2, new=3)
        assert [e.data["n"] for e in await uow.signals.events_since(2, limit=10)] == [2]


async def test_enqueue_is_idempotent_and_claims_are_exclusive(any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        assert await uow.signals.enqueue([delivery("a"), delivery("b")]) == 2
        assert await uow.signals.enqueue([delivery("a", jti="other")]) == 0

    async def claim() -> list[Delivery]:
        async with any_store.unit_of_work() as uow:
            return await uow.signals.claim(now=T, lease=30, limit=10)

    first, second = await asyncio.gather(claim(), claim())
    claimed = first + second
    assert sorted(d.dedupe for d in claimed) == ["a", "b"]
    assert all(d.attempts == 1 for d in claimed) and claimed[0].jti != "other"
    async with any_store.unit_of_work() as uow:
        assert await uow.signals.claim(now=T + 10, lease=30, limit=10) == []  # leased
        again = await uow.signals.claim(now=T + 31, lease=30, limit=10)  # lease over
        assert sorted(d.attempts for d in again) == [2, 2]
        ids = {d.dedupe: d.id for d in again}
        assert ids["a"] is not None and ids["b"] is not None
        await uow.signals.settle(ids["a"], status="delivered", at=T + 32)
        await uow.signals.settle(ids["b"], status="pending", at=T + 32, next_at=T + 100,
                                 error="HTTP 503")
    async with any_store.unit_of_work() as uow:
        assert await uow.signals.claim(now=T + 99, lease=30, limit=10) == []
        [b] = await uow.signals.claim(now=T + 100, lease=30, limit=10)
        assert b.last_error == "HTTP 503"
        await uow.signals.settle(ids["b"], status="dead", at=T + 101, error="gone")
        assert await uow.signals.requeue(ids["b"], at=T + 200)
        assert not await uow.signals.requeue(ids["a"], at=T + 200)  # delivered, not dead
        [delivered] = await uow.signals.deliveries(status="delivered")
        assert delivered.delivered_at == T + 32


async def test_poll_deliveries_are_acknowledged(any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.signals.enqueue([delivery(f"p{n}", target="s1", mode="poll")
                                   for n in range(3)])
    async with any_store.unit_of_work() as uow:
        pending = await uow.signals.pending_for("s1", limit=10)
        assert [d.jti for d in pending] == ["jti-p0", "jti-p1", "jti-p2"]
        assert await uow.signals.claim(now=T, lease=30, limit=10) == []  # never pushed
        assert await uow.signals.acknowledge("s1", ["jti-p0", "nope"], at=T) == 1
        assert await uow.signals.acknowledge("other", ["jti-p1"], at=T) == 0
        assert await uow.signals.acknowledge("s1", ["jti-p1"], at=T, error="bad") == 1
    async with any_store.unit_of_work(read_only=True) as uow:
        assert [d.jti for d in await uow.signals.pending_for("s1", limit=10)] == ["jti-p2"]


async def test_observations_and_prune(any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        for n in range(3):
            await uow.signals.observe(RiskObservation("refresh", T + n, "default", "u1", "f1",
                                                      "192.0.2.0/24", "ua" * 200))
        await uow.signals.enqueue([delivery("old")])
    async with any_store.unit_of_work() as uow:
        seen = await uow.signals.observations(since=T + 1, family_id="f1")
        assert [o.at for o in seen] == [T + 2, T + 1] and len(seen[0].user_agent or "") == 300
        [d] = await uow.signals.claim(now=T, lease=1, limit=1)
        assert d.id is not None
        await uow.signals.settle(d.id, status="delivered", at=T)
    async with any_store.unit_of_work() as uow:
        assert await uow.signals.prune(T + 10) == 4
        assert await uow.signals.observations(since=0) == []


async def test_session_clients(any_store: SqlStore) -> None:
    async with any_store.unit_of_work() as uow:
        await uow.signals.join_session("sid-1", "c2", at=T)
        await uow.signals.join_session("sid-1", "c1", at=T + 1)
        await uow.signals.join_session("sid-1", "c2", at=T + 2)
    async with any_store.unit_of_work(read_only=True) as uow:
        assert await uow.signals.session_clients("sid-1") == ["c2", "c1"]
        assert await uow.signals.session_clients("sid-2") == []
