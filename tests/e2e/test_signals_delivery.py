"""Durable delivery of logout tokens and SETs: retries with backoff resend the very same
token (same ``jti``), a bound sends it to the dead-letter list, a crashed worker's claim
comes back after its lease, nothing is sent twice with a different ``jti``, a slow or
failing receiver never holds up the request that ended the session, and receivers in
private address space are refused (SSRF)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.application import admin
from tessera.core.clock import FixedClock
from tessera.core.signals import Delivery
from tessera.identity.signals import Signals, build_signals
from tessera.identity.signals.delivery import Pusher
from tessera.observability import events
from tessera.store.sql import SqlStore
from tests.e2e.helpers import audit_rows, claims_of, revoke
from tests.e2e.signals_world import World, pump
from tests.signals_receivers import RelyingParty, receivers_app
from tests.support import AppClient


async def _deliveries(world: World, status: str | None = None) -> list[Delivery]:
    async with world.identity.store.unit_of_work(read_only=True) as uow:
        return list(await uow.signals.deliveries(status=status))


async def _logged_out(world: World) -> tuple[RelyingParty, str]:
    app, rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    response = await revoke(world.tessera, app, tokens["refresh_token"])
    assert response.status_code == 200
    return rp, claims_of(tokens["access_token"])["sid"]


async def test_a_failing_receiver_is_retried_with_backoff_and_the_same_token(
        world: World) -> None:
    clock = world.identity.clock
    assert isinstance(clock, FixedClock)
    app, rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    rp.fail_with = 503
    assert (await revoke(world.tessera, app, tokens["refresh_token"])).status_code == 200
    await pump(world.identity)
    [pending] = await _deliveries(world, "pending")
    assert pending.attempts == 1 and pending.last_error == "HTTP 503"
    await pump(world.identity)  # not due yet: backoff
    assert (await _deliveries(world, "pending"))[0].attempts == 1
    clock.advance(1.0)
    await pump(world.identity)
    assert (await _deliveries(world, "pending"))[0].attempts == 2
    rp.fail_with = None
    clock.advance(1.0)
    await pump(world.identity)
    assert (await _deliveries(world, "pending"))  # second backoff is 2 s
    clock.advance(1.0)
    await pump(world.identity)
    [_delivered] = await _deliveries(world, "delivered")
    assert [logout.claims["jti"] for logout in rp.logouts] == [pending.jti]
    assert rp.logouts[0].token == pending.token
    failed = await audit_rows(world.identity, events.SIGNAL_FAILED)
    assert [r.fields["http_status"] for r in failed] == [503, 503]
    assert all(r.fields["jti"] == pending.jti for r in failed)
    [ok] = await audit_rows(world.identity, events.SIGNAL_DELIVERED)
    assert ok.fields["client_id"] == app.client_id and ok.fields["attempts"] == 3
    text = world.identity.metrics.registry
    assert text.get_sample_value("tessera_signal_deliveries_total", {
        "channel": "logout", "receiver": app.client_id, "outcome": "retry"}) == 2


async def test_after_the_bound_a_delivery_is_dead_lettered_and_can_be_requeued(
        world: World) -> None:
    clock = world.identity.clock
    assert isinstance(clock, FixedClock)
    app, rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    rp.fail_with = 500
    await revoke(world.tessera, app, tokens["refresh_token"])
    for _ in range(4):
        await pump(world.identity)
        clock.advance(10)
    [dead] = await _deliveries(world, "dead")
    assert dead.attempts == 3  # max_attempts in this world
    [letter] = await audit_rows(world.identity, events.SIGNAL_DEAD_LETTERED)
    assert letter.fields["jti"] == dead.jti
    rp.fail_with = None
    async with world.identity.store.unit_of_work() as uow:
        assert await uow.signals.requeue(dead.id, at=clock.now())
    await pump(world.identity)
    assert [x.claims["jti"] for x in rp.logouts] == [dead.jti]


async def test_a_refusal_is_not_retried(world: World) -> None:
    app, rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    rp.fail_with = 400
    await revoke(world.tessera, app, tokens["refresh_token"])
    await pump(world.identity)
    [dead] = await _deliveries(world, "dead")
    assert dead.attempts == 1 and dead.last_error.startswith("HTTP 400")


async def test_a_slow_receiver_times_out_and_never_blocks_the_request(
        tmp_path: Path, sqlite_store: SqlStore, clock: FixedClock) -> None:
    from tests.e2e.signals_world import signals_identity, signals_settings
    from tests.support import TesseraDriver

    rps: dict = {}  # type: ignore[type-arg]
    identity = await signals_identity(
        signals_settings(tmp_path, signals={"timeout": 0.2, "max_attempts": 3}),
        sqlite_store, clock, rps, {})
    from tessera.identity.app import build_app

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                                 base_url="http://127.0.0.1:8000") as http:
        w = World(identity, TesseraDriver(identity, http), (await http.get("/jwks")).json(),
                  rps, {})
        app, rp = await w.relying_party("rp")
        rp.delay = 2.0
        await w.tessera.user("alice")
        tokens = await w.tessera.login_tokens(app, username="alice")
        response = await revoke(w.tessera, app, tokens["refresh_token"])
        assert response.status_code == 200 and rp.logouts == []  # answered before delivery
        await pump(identity)
        [pending] = await _deliveries(w, "pending")
        assert pending.last_error == "timeout"
        rp.delay = 0
        clock.advance(5)
        await pump(identity)
        assert [x.claims["jti"] for x in rp.logouts] == [pending.jti]
    assert identity.signals is not None
    await identity.signals.aclose()
    await identity.audit.aclose()


async def test_a_crashed_workers_claim_returns_after_its_lease_with_the_same_token(
        world: World) -> None:
    clock = world.identity.clock
    assert isinstance(clock, FixedClock)
    rp, sid = await _logged_out(world)
    signals = world.identity.signals
    assert signals is not None
    await signals.fanout.fan_out_once()
    async with world.identity.store.unit_of_work() as uow:  # a worker claims, then dies
        [claimed] = await uow.signals.claim(now=clock.now(), lease=30, limit=10)
    assert await signals.pusher.push_once() == 0  # leased: nobody else sends it
    clock.advance(31)
    fresh = build_signals(world.identity, transport=httpx.ASGITransport(
        app=receivers_app(world.rps, world.receivers)))  # a restarted process
    assert await fresh.fanout.fan_out_once() == 0  # the cursor moved with the commit
    assert await fresh.pusher.push_once() == 1
    await fresh.aclose()
    assert [x.claims["jti"] for x in rp.logouts] == [claimed.jti]
    assert rp.logouts[0].claims["sid"] == sid


async def test_concurrent_workers_deliver_each_token_once(world: World) -> None:
    app, rp = await world.relying_party("rp")
    for n in range(5):  # five users, five sessions (one browser would be one session)
        await world.tessera.user(f"user{n}")
        world.tessera.http.cookies.clear()
        tokens = await world.tessera.login_tokens(app, username=f"user{n}")
        await revoke(world.tessera, app, tokens["refresh_token"])
    signals = world.identity.signals
    assert signals is not None
    other = build_signals(world.identity, transport=httpx.ASGITransport(
        app=receivers_app(world.rps, world.receivers)))
    await asyncio.gather(signals.fanout.fan_out_once(), other.fanout.fan_out_once(),
                         return_exceptions=True)
    await asyncio.gather(signals.fanout.fan_out_once(), other.fanout.fan_out_once())
    await asyncio.gather(signals.pusher.push_once(), other.pusher.push_once())
    await other.aclose()
    await pump(world.identity)
    jtis = [x.claims["jti"] for x in rp.logouts]
    assert len(jtis) == 5 and rp.duplicates == []
    assert len(await _deliveries(world)) == 5


@pytest.mark.parametrize("uri", ["https://10.1.2.3/logout", "https://169.254.169.254/x",
                                 "http://rp.example/logout", "https://[::1]/x#frag",
                                 "https://user:pw@rp.example/x", "ftp://rp.example/x"])
async def test_unsafe_logout_uris_are_refused_at_registration(world: World,
                                                             uri: str) -> None:
    with pytest.raises(admin.AdminError, match="refused"):
        await admin.create_client(world.identity.admin, name="x", grants=("authorization_code",),
                                  redirect_uris=("https://app.example/cb",),
                                  backchannel_logout_uri=uri)


async def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(
        world: World) -> None:
    app, rp = await world.relying_party("rp")
    async with world.identity.store.unit_of_work() as uow:
        from tessera.core.signals import LogoutTarget

        await uow.signals.set_logout(app.client_id, LogoutTarget(
            app.client_id, "https://rp.attacker.example/logout"))

    async def resolve(host: str, port: int) -> list[str]:
        assert host == "rp.attacker.example"
        return ["93.184.216.34", "10.0.0.7"]  # one public, one private: refused

    signals = world.identity.signals
    assert signals is not None
    signals.pusher._resolve = resolve  # the DNS an attacker controls
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    await revoke(world.tessera, app, tokens["refresh_token"])
    await pump(world.identity)
    [dead] = await _deliveries(world, "dead")
    assert "private address" in dead.last_error
    assert rp.logouts == []


def test_pusher_is_the_one_delivery_path() -> None:
    assert Pusher.push_once.__doc__


async def _signed_in_and_settled(world: World) -> tuple[AppClient, RelyingParty,
                                                         dict[str, Any], Signals]:
    """A relying party with a back-channel logout URI, alice signed in to it, and the
    fan-out settled: what the two fan-out tests below start from."""
    app, rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    signals = world.identity.signals
    assert signals is not None
    await pump(world.identity)
    return app, rp, tokens, signals


async def test_revocations_that_end_no_session_pass_without_a_write(world: World) -> None:
    """An access-token revocation makes no delivery: the fan-out reads past it without a
    write transaction (which would queue the next revocation behind it on SQLite) and
    the stored cursor moves with the next event that does end a session."""
    from tessera.identity.signals.fanout import REVOCATIONS

    app, rp, tokens, signals = await _signed_in_and_settled(world)
    async with world.identity.store.unit_of_work(read_only=True) as uow:
        before = await uow.signals.cursor(REVOCATIONS)
    assert (await revoke(world.tessera, app, tokens["access_token"])).status_code == 200
    assert await signals.fanout.fan_out_once() == 0
    async with world.identity.store.unit_of_work(read_only=True) as uow:
        assert await uow.signals.cursor(REVOCATIONS) == before, "no write for it"
        head = await uow.revocations.last_seq()
    assert head > before
    assert (await revoke(world.tessera, app, tokens["refresh_token"])).status_code == 200
    await pump(world.identity)
    assert [x.claims["sid"] for x in rp.logouts] == [claims_of(tokens["access_token"])["sid"]]
    async with world.identity.store.unit_of_work(read_only=True) as uow:
        assert await uow.signals.cursor(REVOCATIONS) == await uow.revocations.last_seq()


async def _no_read() -> int:
    raise AssertionError("the fan-out read the outbox")


async def test_this_process_own_token_revocations_pass_without_a_read(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Handed over by the store with the commit (``Store.hand_off_outbox``), events that
    continue what the fan-out read and can make no delivery pass in memory: no read
    unit of work per revocation on the loop that serves the next one. A session end
    handed the same way is read and delivered."""
    app, rp, tokens, signals = await _signed_in_and_settled(world)
    fanout = signals.fanout
    await fanout.step()  # settled: it knows where the outbox ends
    second = await world.tessera.login_tokens(app, username="alice")
    await pump(world.identity)
    await fanout.step()
    with monkeypatch.context() as patched:
        patched.setattr(fanout, "fan_out_once", _no_read)
        for token in (tokens["access_token"], second["access_token"]):
            assert (await revoke(world.tessera, app, token)).status_code == 200
            assert await fanout.step() is False
    async with world.identity.store.unit_of_work(read_only=True) as uow:
        assert fanout._passed == await uow.revocations.last_seq()
    assert (await revoke(world.tessera, app, tokens["refresh_token"])).status_code == 200
    await fanout.step()
    await pump(world.identity)
    assert [x.claims["sid"] for x in rp.logouts] == [claims_of(tokens["access_token"])["sid"]]


async def test_a_commit_of_another_process_before_this_one_is_read(
        world: World, sqlite_store: SqlStore) -> None:
    """Handed events that do not continue what was read (another process committed in
    between: the CLI ending a session) send the fan-out to the outbox, so that session's
    logout is delivered with this process's next commit."""
    from tessera.application import lifecycle
    from tessera.application.transaction import transaction
    from tessera.store.sql import create_store

    app, rp, tokens, signals = await _signed_in_and_settled(world)
    second = await world.tessera.login_tokens(app, username="alice")
    await pump(world.identity)
    await signals.fanout.step()
    sid = claims_of(tokens["access_token"])["sid"]
    other = create_store(str(sqlite_store.engine.url))  # no hand-off, no listener of ours
    try:
        async with transaction(other, world.identity.audit) as tx:
            assert await lifecycle.revoke_session(tx, sid, at=world.identity.clock.now(),
                                                  reason="admin", token_ttl=300.0)
    finally:
        await other.close()
    assert (await revoke(world.tessera, app, second["access_token"])).status_code == 200
    assert await signals.fanout.step() is True  # read: a delivery was made
    await pump(world.identity)
    assert [x.claims["sid"] for x in rp.logouts] == [sid]


async def test_an_outbox_that_went_back_is_read_from_the_stored_cursor(world: World) -> None:
    """What the fan-out passed in memory is forgotten when the outbox's head is below it
    (a database restored under a running service): session ends are still delivered."""
    app, rp, tokens, signals = await _signed_in_and_settled(world)
    signals.fanout._passed = 10**9  # as if it had read far past what the store holds now
    assert await signals.fanout.fan_out_once() == 0
    async with world.identity.store.unit_of_work(read_only=True) as uow:
        head = await uow.revocations.last_seq()
    fanout = signals.fanout  # what it knows is the head, not the forgotten position
    assert fanout._current and max(fanout._stored, fanout._passed) == head
    assert (await revoke(world.tessera, app, tokens["refresh_token"])).status_code == 200
    await pump(world.identity)
    assert [x.claims["sid"] for x in rp.logouts] == [claims_of(tokens["access_token"])["sid"]]
