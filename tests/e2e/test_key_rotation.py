"""Key rotation (DESIGN §5): next → active → retiring → retired. Tokens signed before a
rotation keep verifying while their key is retiring; JWKS never shows retired keys and
shows the next key before it signs. The ring holds one active key per algorithm in use
(ES256 access tokens, RS256 ID tokens by default); each rotates on its own."""

from __future__ import annotations

from typing import Any

import jwt

from tessera.core.clock import FixedClock
from tessera.identity.compose import Identity
from tessera.observability import events
from tessera.settings import Settings
from tests.e2e.helpers import audit_rows, client_token, logged_in, refresh
from tests.support import TesseraDriver


async def _kids(tessera: TesseraDriver, alg: str | None = "ES256") -> set[str]:
    jwks: dict[str, Any] = (await tessera.http.get("/jwks")).json()
    return {k["kid"] for k in jwks["keys"] if alg is None or k["alg"] == alg}


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def _rotate(identity: Identity, alg: str | None = "ES256") -> dict[str, str]:
    changes = await identity.key_manager.rotate(actor="test", alg=alg)
    await identity.reload_keys()
    return changes


async def test_tokens_from_before_a_rotation_stay_valid(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    service = await tessera.client()
    old_service_token = await client_token(tessera, service)
    old_kid = _kid(tokens["access_token"])
    published_before = await _kids(tessera)
    [next_kid] = published_before - {old_kid}

    changes = await _rotate(identity)
    assert changes[old_kid] == "retiring" and changes[next_kid] == "active"

    new_token = await client_token(tessera, service)
    assert _kid(new_token) == next_kid  # caches knew this key before it signed
    assert old_kid in await _kids(tessera)
    for token in (tokens["access_token"], old_service_token, new_token):
        assert (await tessera.introspect(app, token))["active"] is True
    userinfo = await tessera.http.get(
        "/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 200
    refreshed = await refresh(tessera, app, tokens["refresh_token"])
    assert _kid(refreshed.json()["access_token"]) == next_kid
    rotated = await audit_rows(identity, events.KEY_ROTATED)
    assert [r.fields["kid"] for r in rotated] == [next_kid]


async def test_jwks_lists_next_active_and_retiring_never_retired(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock,
        settings: Settings) -> None:
    first = await _kids(tessera)
    first_changes = await _rotate(identity)
    [retiring] = [kid for kid, state in first_changes.items() if state == "retiring"]
    after_one = await _kids(tessera)
    assert len(after_one) == 3 and first <= after_one

    tok = settings.tokens
    clock.advance(max(tok.access_token_ttl, tok.id_token_ttl) + tok.leeway + 1)
    second_changes = await _rotate(identity)
    assert second_changes[retiring] == "retired"
    after_two = await _kids(tessera)
    assert retiring not in after_two
    assert {kid for kid, s in second_changes.items() if s != "retired"} <= after_two
    assert len(after_two) == 3


async def test_quick_second_rotation_keeps_both_retiring_keys(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    await _rotate(identity)
    middle = await client_token(tessera, await tessera.client())
    await _rotate(identity)
    published = await _kids(tessera)
    assert {_kid(tokens["access_token"]), _kid(middle)} <= published
    for token in (tokens["access_token"], middle):
        assert (await tessera.introspect(app, token))["active"] is True


async def test_id_token_hint_signed_by_a_retiring_key_still_logs_out(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    await _rotate(identity)
    response = await tessera.http.get("/logout", params={"id_token_hint": tokens["id_token"]})
    assert response.status_code == 200
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is False


async def test_each_algorithm_rotates_on_its_own(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    access_kid, id_kid = _kid(tokens["access_token"]), _kid(tokens["id_token"])
    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "RS256"
    [next_rs] = await _kids(tessera, "RS256") - {id_kid}
    [next_es] = await _kids(tessera, "ES256") - {access_kid}

    changes = await _rotate(identity, "RS256")
    assert changes[id_kid] == "retiring" and changes[next_rs] == "active"
    assert access_kid not in changes
    again = await tessera.login_tokens(app, username="alice")
    assert _kid(again["id_token"]) == next_rs and _kid(again["access_token"]) == access_kid

    everything = await _rotate(identity, None)  # `tessera keys rotate`: every algorithm
    assert everything[access_kid] == "retiring" and everything[next_es] == "active"
    assert everything[next_rs] == "retiring"
    assert len(await _kids(tessera, None)) == 7  # 2 × (next, active) + 3 retiring
    rotated = await audit_rows(identity, events.KEY_ROTATED)
    assert len(rotated) == 3
    for token in (tokens["access_token"], again["access_token"]):
        assert (await tessera.introspect(app, token))["active"] is True
