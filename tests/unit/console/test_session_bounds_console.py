"""The console is a use of the login session like any other (issue 13, item 2): a session
past its idle timeout is refused there and revoked; a console sign-in counts against the
per-user session limit."""

from __future__ import annotations

from tessera.core.clock import FixedClock
from tessera.identity import session_policy
from tessera.identity.compose import Identity
from tests.unit.console.conftest import ConsoleDriver


async def test_an_idle_console_session_ends(console: ConsoleDriver, identity: Identity,
                                            clock: FixedClock) -> None:
    await console.admin()
    await session_policy.set_session_policy(identity, "default", idle_timeout="5m")
    clock.advance(4 * 60)
    assert (await console.http.get("/console/sessions")).status_code == 200
    clock.advance(4 * 60)
    assert (await console.http.get("/console/sessions")).status_code == 200
    clock.advance(6 * 60)  # within the console's max_auth_age: only the idle bound ends it
    page = await console.http.get("/console/sessions")
    assert page.status_code in (303, 401), page.text
    async with identity.store.unit_of_work(read_only=True) as uow:
        root = await uow.users.by_username("default", "root")
        assert root is not None
        assert await uow.sessions.active_for_user(root.user_id) == []


async def test_a_console_sign_in_counts_against_the_limit(console: ConsoleDriver,
                                                          identity: Identity) -> None:
    await console.admin()
    await session_policy.set_session_policy(identity, "default", max_sessions="1")
    console.http.cookies.clear()
    refused = await console.login()
    assert refused.status_code in (401, 403, 429), refused.text
    assert "sessions" in refused.text
