"""Token revocation (RFC 7009): refresh tokens end their family, access tokens their jti;
unknown tokens get 200; another client's tokens are refused."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.core.secrets import token_hash
from tessera.identity.compose import Identity
from tessera.observability import events
from tessera.store.ports import StoreError
from tessera.store.sql.audit_writer import SqliteAuditWriter
from tests.e2e.helpers import audit_rows, claims_of, client_token, logged_in, refresh, revoke
from tests.support import TesseraDriver


async def test_revoking_a_refresh_token_ends_its_family(
        tessera: TesseraDriver, identity: Identity) -> None:
    app, tokens = await logged_in(tessera)
    rotated = (await refresh(tessera, app, tokens["refresh_token"])).json()
    response = await revoke(tessera, app, rotated["refresh_token"],
                            token_type_hint="refresh_token")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    after = await refresh(tessera, app, rotated["refresh_token"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
    assert await tessera.introspect(app, rotated["refresh_token"]) == {"active": False}
    rows = await audit_rows(identity, events.TOKEN_REVOKED)
    assert [r.fields["token_hash"] for r in rows] == [token_hash(rotated["refresh_token"])]


async def test_revoking_a_refresh_token_invalidates_its_access_tokens(
        tessera: TesseraDriver) -> None:
    """RFC 7009 §2.1: the server SHOULD also invalidate the access tokens of the grant."""
    app, tokens = await logged_in(tessera)
    rotated = (await refresh(tessera, app, tokens["refresh_token"])).json()
    assert (await revoke(tessera, app, rotated["refresh_token"])).status_code == 200
    assert await tessera.introspect(app, rotated["access_token"]) == {"active": False}
    assert await tessera.introspect(app, tokens["access_token"]) == {"active": False}


async def test_revoking_an_access_token_leaves_the_refresh_token(
        tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    assert (await revoke(tessera, app, tokens["access_token"],
                         token_type_hint="access_token")).status_code == 200
    assert await tessera.introspect(app, tokens["access_token"]) == {"active": False}
    userinfo = await tessera.http.get(
        "/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401
    assert (await refresh(tessera, app, tokens["refresh_token"])).status_code == 200


async def test_revoking_twice_and_unknown_tokens_answer_200(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    for token in (tokens["refresh_token"], tokens["refresh_token"], "no-such-token",
                  "a.b.c"):
        response = await revoke(tessera, app, token)
        assert response.status_code == 200, (token, response.text)


async def test_another_clients_token_is_refused(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    other = await tessera.web_client()
    for token in (tokens["refresh_token"], tokens["access_token"]):
        response = await revoke(tessera, other, token)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"
    assert (await tessera.introspect(app, tokens["access_token"]))["active"] is True
    assert (await refresh(tessera, app, tokens["refresh_token"])).status_code == 200


async def test_public_client_may_revoke_its_own_token(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera, public=True)
    assert (await revoke(tessera, app, tokens["refresh_token"])).status_code == 200
    assert (await refresh(tessera, app, tokens["refresh_token"])).json()["error"] == \
        "invalid_grant"


async def test_unsupported_token_type_hint(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    response = await revoke(tessera, app, tokens["refresh_token"], token_type_hint="id_token")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_token_type"
    assert (await refresh(tessera, app, tokens["refresh_token"])).status_code == 200


async def test_client_authentication_is_required(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    response = await tessera.http.post("/revoke", data={"token": tokens["refresh_token"]})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    wrong = await tessera.http.post("/revoke", data={"token": tokens["refresh_token"]},
                                    auth=(app.client_id, "wrong"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].lower().startswith("basic")
    assert claims_of(tokens["access_token"])["client_id"] == app.client_id
    assert (await refresh(tessera, app, tokens["refresh_token"])).status_code == 200


async def test_a_store_failure_while_revoking_a_token_without_a_session_is_a_503(
        tessera: TesseraDriver, identity: Identity, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client-credentials token's revocation commits in one step (``append_outbox``;
    on this SQLite file, one function on the audit writer's connection). When that write
    fails the client gets ``temporarily_unavailable`` (no detail, no token), nothing was
    revoked, and the same request succeeds once the store is back."""
    app = await tessera.client(scope="orders:read")
    token = await client_token(tessera, app)
    writes = 0
    write = SqliteAuditWriter.write

    async def failing(self: SqliteAuditWriter, records: Any, events: Any = (),
                      **kw: Any) -> Any:
        nonlocal writes
        if events:
            writes += 1
            raise StoreError("database error: OperationalError")
        return await write(self, records, events, **kw)

    monkeypatch.setattr(SqliteAuditWriter, "write", failing)
    response = await revoke(tessera, app, token)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert token not in response.text and "Traceback" not in response.text
    assert writes == 1  # the one-step path was taken, and failed
    assert (await tessera.introspect(app, token))["active"] is True  # nothing half-done
    monkeypatch.setattr(SqliteAuditWriter, "write", write)
    assert (await revoke(tessera, app, token)).status_code == 200
    assert await tessera.introspect(app, token) == {"active": False}
