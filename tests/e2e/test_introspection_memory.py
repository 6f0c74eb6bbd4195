"""Introspection of JWT access tokens from the in-memory revocation state (issue 15 item
3): answered without the store while the state is provably current, and never ``active``
for a token revoked by this process or — once relayed — by another one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tessera.application import accounts, lifecycle
from tessera.application.transaction import transaction
from tessera.core.clock import FixedClock
from tessera.identity.compose import Identity
from tessera.store.sql import create_store
from tests.e2e.helpers import claims_of, logged_in, revoke
from tests.support import TesseraDriver, eventually


@contextlib.asynccontextmanager
async def running(identity: Identity) -> AsyncIterator[None]:
    """The relays and the mirror, as the app's lifespan runs them."""
    identity.start_relays()
    task = asyncio.get_running_loop().create_task(identity.mirror.run())
    try:
        await eventually(lambda: _true(identity.mirror.usable(identity.clock.now())))
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await identity.stop_relays()


async def _true(value: bool) -> bool:
    return value


async def test_active_token_is_answered_from_memory(tessera: TesseraDriver,
                                                    identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    async with running(identity):
        before = identity.mirror.answered
        body = await tessera.introspect(app, tokens["access_token"])
        assert body["active"] is True and body["jti"] == claims_of(tokens["access_token"])["jti"]
        assert identity.mirror.answered == before + 1


async def test_never_loaded_state_falls_back_to_the_store(tessera: TesseraDriver,
                                                          identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    assert not identity.mirror.usable(identity.clock.now())
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True
    assert identity.mirror.answered == 0


async def test_stale_state_falls_back_to_the_store(tessera: TesseraDriver, identity: Identity,
                                                   clock: FixedClock) -> None:
    app, tokens = await logged_in(tessera)
    async with running(identity):
        await identity.relays[0].aclose()  # no more watermarks
        clock.advance(identity.settings.tokens.introspection_max_lag + 0.5)
        before = identity.mirror.answered
        assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True
        assert identity.mirror.answered == before


async def test_a_revocation_here_is_seen_at_once(tessera: TesseraDriver, identity: Identity,
                                                 clock: FixedClock) -> None:
    """Read-your-writes: the response to /revoke is followed by no ``active: true``."""
    app, tokens = await logged_in(tessera)
    async with running(identity):
        assert (await revoke(tessera, app, tokens["access_token"])).status_code == 200
        assert (await tessera.introspect(app, tokens["access_token"]))["active"] is False
        # and once relayed (with a watermark taken after the commit), memory answers it
        clock.advance(identity.settings.bus.heartbeat + 0.1)
        await eventually(lambda: _true(identity.mirror.usable(identity.clock.now())))
        before = identity.mirror.answered
        assert (await tessera.introspect(app, tokens["access_token"]))["active"] is False
        assert identity.mirror.answered == before + 1


async def test_revocations_of_another_process_reach_memory(
        tessera: TesseraDriver, identity: Identity) -> None:
    """A session revoked and a user disabled through another store instance (the CLI,
    another worker): the relay's poll brings the events, memory refuses the tokens."""
    app, alice = await logged_in(tessera, username="alice")
    bob = await tessera.login_tokens(app, username=(await tessera.user("bob")) and "bob")
    other = create_store(str(identity.store.engine.url))  # type: ignore[attr-defined]
    try:
        async with running(identity):
            sid = claims_of(alice["access_token"])["sid"]
            async with transaction(other, identity.audit) as tx:
                await lifecycle.revoke_session(tx, sid, at=identity.clock.now(),
                                               reason="test", token_ttl=300)

            async def alice_inactive() -> bool:
                body = await tessera.introspect(app, alice["access_token"])
                return body["active"] is False

            await eventually(alice_inactive)
            user = await accounts.find_user(identity.admin, "bob", tenant_id="default")
            async with transaction(other, identity.audit) as tx:
                await tx.uow.users.set_disabled(user.user_id, True)
                await lifecycle.revoke_user(tx, user.user_id, at=identity.clock.now(),
                                            reason="user_disabled", token_ttl=300)

            async def bob_inactive() -> bool:
                body = await tessera.introspect(app, bob["access_token"])
                return body["active"] is False

            await eventually(bob_inactive)
            await eventually(lambda: _true(identity.mirror.usable(identity.clock.now())))
            before = identity.mirror.answered
            for token in (alice["access_token"], bob["access_token"]):
                assert (await tessera.introspect(app, token))["active"] is False
            assert identity.mirror.answered == before + 2
    finally:
        await other.close()


async def test_on_a_sqlite_file_the_relays_wait_on_the_change_watch(
        identity: Identity) -> None:
    """The watch of SQLite's change counter wakes them for other processes' commits, so
    while it works they only wake by themselves for their heartbeat (as with LISTEN on
    PostgreSQL); when it stops they poll again."""
    async with running(identity):
        await eventually(lambda: _true(all(r.event_driven for r in identity.relays)))
    assert not any(r.event_driven for r in identity.relays)
