"""The audit trail of a whole session lifecycle (DESIGN §7): the events are there, in the
table and as JSON lines, and no secret (token, code, client secret, password, cookie)
appears in either — token hashes only."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from tessera.core.clock import FixedClock
from tessera.identity.compose import Identity
from tessera.observability import events
from tessera.settings import Settings
from tests.conftest import make_settings
from tests.e2e.helpers import admin_client, audit_rows, client_token, refresh, revoke
from tests.support import REDIRECT, TesseraDriver, pkce_pair

PASSWORD = "correct horse battery"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, audit_log_json=True)


async def test_a_whole_lifecycle_leaves_hashes_only(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = await tessera.web_client()
    await tessera.user(password=PASSWORD)
    verifier, challenge = pkce_pair()
    code = await tessera.authorize_code(app, challenge=challenge)
    tokens = (await tessera.token(app, grant_type="authorization_code", code=code,
                                  redirect_uri=REDIRECT, code_verifier=verifier)).json()
    rotated = (await refresh(tessera, app, tokens["refresh_token"])).json()
    await tessera.introspect(app, rotated["access_token"])
    await revoke(tessera, app, rotated["access_token"])
    admin = await admin_client(tessera)
    admin_token = await client_token(tessera, admin)
    wrong = await tessera.http.post("/token", data={"grant_type": "client_credentials"},
                                    auth=(admin.client_id, f"{admin.secret}x"))
    assert wrong.status_code == 401
    clock.advance(61)  # past the lost-response retry window (60 s)
    await refresh(tessera, app, tokens["refresh_token"])  # reuse: ends everything
    cookie = tessera.http.cookies.get("tessera_session")
    assert cookie

    rows = await audit_rows(identity)
    kinds = {r.event for r in rows}
    assert {events.SESSION_CREATED, events.CODE_ISSUED, events.TOKEN_ISSUED,
            events.TOKEN_REFRESHED, events.TOKEN_REVOKED, events.REFRESH_REUSE_DETECTED,
            events.SESSION_REVOKED} <= kinds
    secrets = [code, verifier, PASSWORD, cookie, admin_token, f"{admin.secret}x",
               app.secret or "", admin.secret or ""]
    secrets += [value for body in (tokens, rotated) for value in body.values()
                if isinstance(value, str) and len(value) > 20]
    stored = orjson.dumps([{"event": r.event, **r.fields} for r in rows]).decode()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert any(r.name == "tessera.audit" for r in caplog.records)
    for secret in filter(None, secrets):
        assert secret not in stored
        assert secret not in logged
    for part in ("access_token", "refresh_token", "id_token"):
        for body in (tokens, rotated):
            if part in body:
                # not even the signature or payload of a JWT on its own
                for segment in body[part].split(".")[1:]:
                    assert segment not in stored and segment not in logged


async def test_authorization_redirect_carries_no_token(tessera: TesseraDriver) -> None:
    """Only the code travels in the front channel (no tokens in URLs, DESIGN §9)."""
    app = await tessera.web_client()
    await tessera.user()
    _, challenge = pkce_pair()
    code = await tessera.authorize_code(app, challenge=challenge)
    assert code
    page = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "s-123", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    query = parse_qs(urlsplit(page.headers["location"]).query)
    assert set(query) == {"code", "state", "iss"}
