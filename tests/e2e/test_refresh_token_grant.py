"""Refresh token grant (RFC 6749 §6): rotation on every use, reuse detection that ends the
family and the session (RFC 9700 §4.14.2), the grace window for retries, scope narrowing."""

from __future__ import annotations

import asyncio

from tessera.core.clock import FixedClock
from tessera.identity.compose import Identity
from tessera.observability import events
from tessera.settings import Settings
from tests.e2e.helpers import audit_rows, claims_of, logged_in, refresh
from tests.support import TesseraDriver


async def test_every_use_rotates_and_the_new_token_works(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    first = await refresh(tessera, app, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert claims_of(body["access_token"])["jti"] != claims_of(tokens["access_token"])["jti"]
    second = await refresh(tessera, app, body["refresh_token"])
    assert second.status_code == 200, second.text
    assert second.json()["refresh_token"] not in (body["refresh_token"], tokens["refresh_token"])
    assert (await tessera.introspect(app, second.json()["access_token"]))["active"] is True


async def test_reuse_after_the_retry_window_revokes_family_and_session(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock,
        settings: Settings) -> None:
    app, tokens = await logged_in(tessera)
    old = tokens["refresh_token"]
    rotated = (await refresh(tessera, app, old)).json()
    clock.advance(settings.tokens.refresh_retry_seconds + 1)

    reuse = await refresh(tessera, app, old)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"

    newest = await refresh(tessera, app, rotated["refresh_token"])
    assert newest.status_code == 400 and newest.json()["error"] == "invalid_grant"
    assert (await tessera.introspect(app, rotated["access_token"]))["active"] is False
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is False
    sid = claims_of(tokens["access_token"])["sid"]
    detected = await audit_rows(identity, events.REFRESH_REUSE_DETECTED)
    assert [r.fields["sid"] for r in detected] == [sid]
    revoked = await audit_rows(identity, events.SESSION_REVOKED)
    assert [r.fields["reason"] for r in revoked] == ["refresh_reuse"]


async def test_retry_within_the_grace_window_gets_the_same_pair(
        tessera: TesseraDriver, clock: FixedClock, settings: Settings) -> None:
    app, tokens = await logged_in(tessera)
    first = (await refresh(tessera, app, tokens["refresh_token"])).json()
    clock.advance(settings.tokens.refresh_grace_seconds / 2)
    retry = await refresh(tessera, app, tokens["refresh_token"])
    assert retry.status_code == 200, retry.text
    assert retry.json()["refresh_token"] == first["refresh_token"]
    assert claims_of(retry.json()["access_token"])["jti"] == \
        claims_of(first["access_token"])["jti"]
    # no second branch: the one successor still rotates, and the session lives
    onward = await refresh(tessera, app, first["refresh_token"])
    assert onward.status_code == 200, onward.text
    assert (await tessera.introspect(app, onward.json()["access_token"]))["active"] is True


async def test_retry_after_the_successor_was_used_is_reuse(tessera: TesseraDriver) -> None:
    """Within the grace window too: once the successor rotated, the old token is reuse."""
    app, tokens = await logged_in(tessera)
    first = (await refresh(tessera, app, tokens["refresh_token"])).json()
    second = (await refresh(tessera, app, first["refresh_token"])).json()
    replay = await refresh(tessera, app, tokens["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"
    assert (await refresh(tessera, app, second["refresh_token"])).json()["error"] == \
        "invalid_grant"


async def test_concurrent_refreshes_never_fork_the_family(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    responses = await asyncio.gather(*(refresh(tessera, app, tokens["refresh_token"])
                                       for _ in range(4)))
    ok = [r.json() for r in responses if r.status_code == 200]
    assert ok, [r.text for r in responses]
    assert len({body["refresh_token"] for body in ok}) == 1
    assert len({claims_of(body["access_token"])["jti"] for body in ok}) == 1
    rotations = [r for r in await audit_rows(identity, events.TOKEN_REFRESHED)
                 if not r.fields.get("replay")]
    assert len(rotations) == 1
    onward = await refresh(tessera, app, ok[0]["refresh_token"])
    assert onward.status_code == 200, onward.text


async def test_another_clients_refresh_token_is_invalid_grant(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    other = await tessera.web_client()
    response = await refresh(tessera, other, tokens["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    # the rightful owner is unaffected
    assert (await refresh(tessera, app, tokens["refresh_token"])).status_code == 200


async def test_scope_can_narrow_but_not_widen(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)  # granted "openid api:read"
    wider = await refresh(tessera, app, tokens["refresh_token"], scope="openid api:write")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrow = await refresh(tessera, app, tokens["refresh_token"], scope="api:read")
    assert narrow.status_code == 200, narrow.text
    assert narrow.json()["scope"] == "api:read"
    assert claims_of(narrow.json()["access_token"])["scope"] == "api:read"
    # omitting scope later gives back the originally granted scope (§6)
    full = await refresh(tessera, app, narrow.json()["refresh_token"])
    assert full.json()["scope"] == "api:read openid"


async def test_expired_refresh_token_is_invalid_grant(
        tessera: TesseraDriver, clock: FixedClock, settings: Settings) -> None:
    app, tokens = await logged_in(tessera)
    idle = settings.tokens.refresh_token_ttl
    clock.advance(idle - 60)
    alive = await refresh(tessera, app, tokens["refresh_token"])
    assert alive.status_code == 200, alive.text  # the idle lifetime restarts on rotation
    clock.advance(idle + 1)
    response = await refresh(tessera, app, alive.json()["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_the_family_lifetime_is_absolute(
        tessera: TesseraDriver, clock: FixedClock, settings: Settings) -> None:
    app, tokens = await logged_in(tessera)
    current = tokens["refresh_token"]
    step = settings.tokens.refresh_token_ttl - 60
    elapsed = 0
    while elapsed + step < settings.tokens.refresh_family_ttl:
        clock.advance(step)
        elapsed += step
        response = await refresh(tessera, app, current)
        assert response.status_code == 200, (elapsed, response.text)
        current = response.json()["refresh_token"]
    clock.advance(settings.tokens.refresh_family_ttl - elapsed)
    response = await refresh(tessera, app, current)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_unknown_refresh_token_is_invalid_grant(tessera: TesseraDriver) -> None:
    app, _ = await logged_in(tessera)
    response = await refresh(tessera, app, "not-a-token-we-issued")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_public_client_refreshes_with_its_client_id(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera, public=True)
    response = await refresh(tessera, app, tokens["refresh_token"])
    assert response.status_code == 200, response.text


async def test_refresh_after_logout_of_the_session_fails(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    assert await identity.logout.end_session(claims_of(tokens["access_token"])["sid"])
    response = await refresh(tessera, app, tokens["refresh_token"])
    assert response.json()["error"] == "invalid_grant"


async def test_a_retry_after_a_lost_response_past_the_grace_window_gets_the_same_pair(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock,
        settings: Settings) -> None:
    """The identity service committed the rotation and crashed before answering; the
    client retries 8 s later, past the 5 s concurrency grace. A successor nobody has used
    yet is re-issued (same pair) within ``refresh_retry_seconds``: a lost response is not
    theft, and the user stays logged in."""
    app, tokens = await logged_in(tessera)
    lost = (await refresh(tessera, app, tokens["refresh_token"])).json()  # never delivered
    clock.advance(settings.tokens.refresh_grace_seconds + 3)
    retry = await refresh(tessera, app, tokens["refresh_token"])
    assert retry.status_code == 200, retry.text
    assert retry.json()["refresh_token"] == lost["refresh_token"]
    assert claims_of(retry.json()["access_token"])["jti"] == \
        claims_of(lost["access_token"])["jti"]
    assert not await audit_rows(identity, events.REFRESH_REUSE_DETECTED)
    onward = await refresh(tessera, app, retry.json()["refresh_token"])
    assert onward.status_code == 200, onward.text
    assert (await tessera.introspect(app, onward.json()["access_token"]))["active"] is True


async def test_a_plain_rotation_takes_the_one_write_path_and_chains_its_audit_row(
        tessera: TesseraDriver, identity: Identity) -> None:
    """The hot path (one read, one write) answers a plain rotation; its audit row is the
    same event as the general path's, and the trail's chain is intact."""
    from tessera.core.audit_chain import find_breaks

    store = identity.store
    app, tokens = await logged_in(tessera)
    before = store.rotations.items  # type: ignore[attr-defined]
    first = await refresh(tessera, app, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    assert store.rotations.items == before + 1  # type: ignore[attr-defined]
    rows = await audit_rows(identity, events.TOKEN_REFRESHED)
    newest = rows[0].fields
    assert newest["generation"] == 1 and newest["scopes"] == first.json()["scope"]
    async with store.unit_of_work(read_only=True) as uow:
        stored = await uow.audit.scan(limit=100_000)
    assert find_breaks([(r.id, r.record.event, r.record.at, r.record.fields, r.chain_hash)
                        for r in stored])[0] == []
