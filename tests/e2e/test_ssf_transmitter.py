"""The SSF transmitter (OpenID SSF 1.0 + CAEP 1.0): configuration metadata, stream
management, push (RFC 8935) and poll (RFC 8936) delivery of SETs validated by an
independent receiver, subjects, verification, pause, tenant isolation, and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.application import accounts, client_admin
from tessera.core.signals import (
    CAEP_ASSURANCE_LEVEL_CHANGE,
    CAEP_CREDENTIAL_CHANGE,
    CAEP_SESSION_REVOKED,
    CAEP_TOKEN_CLAIMS_CHANGE,
)
from tests.e2e.helpers import admin_client, claims_of, client_token, revoke
from tests.e2e.signals_world import LOOP, RECEIVERS, World, pump
from tests.signals_receivers import SsfReceiver

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_configuration_metadata(world: World) -> None:
    response = await world.tessera.http.get("/.well-known/ssf-configuration")
    assert response.status_code == 200
    config = response.json()
    assert config["issuer"] == LOOP and config["jwks_uri"] == f"{LOOP}/jwks"
    assert set(config["delivery_methods_supported"]) == {PUSH, POLL}
    assert config["configuration_endpoint"] == f"{LOOP}/ssf/streams"
    assert config["default_subjects"] == "ALL"
    discovery = (await world.tessera.http.get("/.well-known/openid-configuration")).json()
    assert discovery["backchannel_logout_supported"] is True
    assert discovery["backchannel_logout_session_supported"] is True
    assert discovery["global_token_revocation_endpoint"] == f"{LOOP}/global-token-revocation"


async def test_stream_lifecycle_create_read_update_delete(world: World) -> None:
    stream_id, _receiver, token = await world.push_stream(
        "siem", events=(CAEP_SESSION_REVOKED,), description="SIEM")
    http = world.tessera.http
    read = (await http.get("/ssf/streams", params={"stream_id": stream_id},
                           headers=_auth(token))).json()
    assert read["events_delivered"] == [CAEP_SESSION_REVOKED]
    assert read["delivery"] == {"method": PUSH, "endpoint_url": f"{RECEIVERS}/ssf/siem/events"}
    assert read["aud"] == claims_of(token)["client_id"] and read["description"] == "SIEM"
    patched = await http.patch("/ssf/streams", headers=_auth(token), json={
        "stream_id": stream_id, "events_requested": [CAEP_SESSION_REVOKED,
                                                     CAEP_CREDENTIAL_CHANGE]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "SIEM"
    assert set(patched.json()["events_delivered"]) == {CAEP_SESSION_REVOKED,
                                                       CAEP_CREDENTIAL_CHANGE}
    replaced = await http.put("/ssf/streams", headers=_auth(token), json={
        "stream_id": stream_id, "delivery": {"method": POLL},
        "events_requested": [CAEP_SESSION_REVOKED]})
    assert replaced.status_code == 200 and "description" not in replaced.json()
    assert replaced.json()["delivery"]["endpoint_url"] == f"{LOOP}/ssf/poll/{stream_id}"
    listed = (await http.get("/ssf/streams", headers=_auth(token))).json()
    assert [s["stream_id"] for s in listed] == [stream_id]
    deleted = await http.delete("/ssf/streams", params={"stream_id": stream_id},
                                headers=_auth(token))
    assert deleted.status_code == 204
    gone = await http.get("/ssf/streams", params={"stream_id": stream_id}, headers=_auth(token))
    assert gone.status_code == 404


async def test_push_delivers_caep_events_for_every_kind_of_change(world: World) -> None:
    _stream_id, receiver, _token = await world.push_stream("siem")
    app, _rp = await world.relying_party("rp")
    user_id = await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    async with world.identity.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.get(user_id)
    assert user is not None
    await accounts.grant_role(world.identity.admin, user, "tenant-admin", actor="admin")
    await accounts.set_password(world.identity.admin, user, "a brand new password", actor="admin")
    await pump(world.identity)
    kinds = {r.event_type for r in receiver.received}
    assert {CAEP_TOKEN_CLAIMS_CHANGE, CAEP_CREDENTIAL_CHANGE, CAEP_SESSION_REVOKED} <= kinds
    [claims] = receiver.of_type("token-claims-change")
    assert claims.payload["claims"] == {"roles": ["tenant-admin"]}
    assert claims.claims["sub_id"] == {"format": "iss_sub", "iss": LOOP, "sub": user_id}
    [credential] = receiver.of_type("credential-change")
    assert credential.payload["credential_type"] == "password"
    assert credential.payload["change_type"] == "update"
    assert receiver.rejected == []
    assert "exp" not in credential.claims and tokens


async def test_assurance_level_change_on_step_up(world: World) -> None:
    _stream_id, receiver, _token = await world.push_stream("siem",
                                                           events=(CAEP_ASSURANCE_LEVEL_CHANGE,))
    app, _rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    sid = claims_of(tokens["access_token"])["sid"]
    async with world.identity.store.unit_of_work(read_only=True) as uow:
        session = await uow.sessions.get(sid)
    assert session is not None
    assert await world.identity.login.reauthenticate(session, acr="urn:tessera:acr:mfa",
                                                     amr=("pwd", "otp")) is not None
    await pump(world.identity)
    [change] = receiver.received
    assert change.event_type == CAEP_ASSURANCE_LEVEL_CHANGE
    assert change.payload["current_level"] == "urn:tessera:acr:mfa"
    assert change.payload["previous_level"] == session.acr


async def test_poll_delivery_with_acknowledgement(world: World) -> None:
    app, token = await world.ssf_client()
    http = world.tessera.http
    created = await http.post("/ssf/streams", headers=_auth(token), json={
        "delivery": {"method": POLL}, "events_requested": [CAEP_SESSION_REVOKED]})
    assert created.status_code == 201, created.text
    poll_url = created.json()["delivery"]["endpoint_url"]
    receiver = SsfReceiver(app.client_id, LOOP, world.jwks, world.identity.clock.now)
    rp_app, _rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(rp_app, username="alice")
    await revoke(world.tessera, rp_app, tokens["refresh_token"])
    await pump(world.identity)
    first = await receiver.poll(http, poll_url, token, ack=False)
    assert len(first["sets"]) == 1 and first["moreAvailable"] is False
    again = await receiver.poll(http, poll_url, token)  # not acknowledged: same SET, same jti
    assert again["sets"] == first["sets"]
    empty = await receiver.poll(http, poll_url, token)
    assert empty["sets"] == {}
    [revoked] = receiver.received
    assert revoked.claims["sub_id"]["session"]["id"] == claims_of(tokens["access_token"])["sid"]


async def test_subjects_narrow_a_stream_and_verification_reaches_it(world: World) -> None:
    stream_id, receiver, token = await world.push_stream("siem", default_subjects="NONE",
                                                         events=(CAEP_SESSION_REVOKED,))
    http = world.tessera.http
    app, _rp = await world.relying_party("rp")
    alice = await world.tessera.user("alice")
    await world.tessera.user("bob")
    added = await http.post("/ssf/subjects/add", headers=_auth(token), json={
        "stream_id": stream_id, "subject": {"format": "iss_sub", "iss": LOOP, "sub": alice}})
    assert added.status_code == 200
    for name in ("alice", "bob"):
        world.tessera.http.cookies.clear()
        tokens = await world.tessera.login_tokens(app, username=name)
        await revoke(world.tessera, app, tokens["refresh_token"])
    await pump(world.identity)
    assert [r.claims["sub_id"]["user"]["sub"] for r in receiver.received] == [alice]
    verified = await http.post("/ssf/verify", headers=_auth(token),
                               json={"stream_id": stream_id, "state": "abc"})
    assert verified.status_code == 204
    await pump(world.identity)
    [check] = receiver.of_type("verification")
    assert check.payload == {"state": "abc"}
    removed = await http.post("/ssf/subjects/remove", headers=_auth(token), json={
        "stream_id": stream_id, "subject": {"format": "iss_sub", "iss": LOOP, "sub": alice}})
    assert removed.status_code == 204


async def test_a_paused_stream_holds_events_until_enabled(world: World) -> None:
    stream_id, receiver, token = await world.push_stream("siem")
    http = world.tessera.http
    paused = await http.post("/ssf/status", headers=_auth(token),
                             json={"stream_id": stream_id, "status": "paused"})
    assert paused.json() == {"stream_id": stream_id, "status": "paused"}
    app, _rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    await revoke(world.tessera, app, tokens["refresh_token"])
    await pump(world.identity)
    assert receiver.received == []
    await http.post("/ssf/status", headers=_auth(token),
                    json={"stream_id": stream_id, "status": "enabled"})
    world.identity.clock.advance(60)  # type: ignore[attr-defined]
    await pump(world.identity)
    assert len(receiver.of_type("session-revoked")) == 1
    status = await http.get("/ssf/status", params={"stream_id": stream_id},
                            headers=_auth(token))
    assert status.json()["status"] == "enabled"


async def test_another_clients_or_tenants_stream_is_not_found(world: World) -> None:
    stream_id, _receiver, _token = await world.push_stream("siem")
    _other, other_token = await world.ssf_client()
    _foreign, foreign_token = await world.ssf_client(tenant="acme")
    http = world.tessera.http
    for token in (other_token, foreign_token):
        for response in (
            await http.get("/ssf/streams", params={"stream_id": stream_id},
                           headers=_auth(token)),
            await http.delete("/ssf/streams", params={"stream_id": stream_id},
                              headers=_auth(token)),
            await http.post("/ssf/status", headers=_auth(token),
                            json={"stream_id": stream_id, "status": "disabled"}),
            await http.post(f"/ssf/poll/{stream_id}", headers=_auth(token), json={}),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["error"] == "not_found"
        assert (await http.get("/ssf/streams", headers=_auth(token))).json() == []


async def test_a_tenants_stream_hears_only_its_own_tenant(world: World) -> None:
    _sid, acme_receiver, _t = await world.push_stream("acme", tenant="acme")
    _sid2, default_receiver, _t2 = await world.push_stream("default")
    app, _rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(app, username="alice")
    await revoke(world.tessera, app, tokens["refresh_token"])
    await pump(world.identity)
    assert acme_receiver.received == [] and len(default_receiver.received) == 1


async def test_unauthorised_stream_access(world: World) -> None:
    http = world.tessera.http
    no_token = await http.get("/ssf/streams")
    assert no_token.status_code == 401 and "Bearer" in no_token.headers["www-authenticate"]
    bogus = await http.get("/ssf/streams", headers=_auth("not-a-token"))
    assert bogus.status_code == 401 and bogus.json()["error"] == "invalid_token"
    admin_token = await client_token(world.tessera, await admin_client(world.tessera),
                                     scope="tessera:admin")
    wrong_scope = await http.get("/ssf/streams", headers=_auth(admin_token))
    assert wrong_scope.status_code == 403 and wrong_scope.json()["error"] == "insufficient_scope"
    app, token = await world.ssf_client()
    assert (await http.get("/ssf/streams", headers=_auth(token))).status_code == 200
    await client_admin.set_disabled(world.identity.admin, app.client_id, disabled=True)
    disabled = await http.get("/ssf/streams", headers=_auth(token))
    assert disabled.status_code in (401, 403), disabled.text  # re-checked at every call


@pytest.mark.parametrize(("body", "needle"), [
    ({"delivery": {"method": PUSH, "endpoint_url": "http://example.com/events"}},
     "https"),
    ({"delivery": {"method": PUSH, "endpoint_url": "https://10.0.0.8/events"}}, "private"),
    ({"delivery": {"method": PUSH}}, "endpoint_url"),
    ({"delivery": {"method": "urn:example:carrier-pigeon"}}, "delivery.method"),
    ({"delivery": "push"}, "delivery must be an object"),
    ({"delivery": {"method": POLL, "endpoint_url": "https://x.example/"}}, "transmitter"),
    ({"events_requested": ["https://example.com/made-up-event"]}, "unsupported event type"),
    ({"events_requested": "session-revoked"}, "events_requested"),
    ({"description": 7}, "description"),
    ({"stream_id": "mine"}, "set by the transmitter"),
    ({"colour": "blue"}, "unknown stream property"),
    ({"default_subjects": "SOME"}, "default_subjects"),
    ({"delivery": {"method": PUSH, "endpoint_url": f"{RECEIVERS}/x",
                   "authorization_header": "a\r\nb"}}, "authorization_header"),
])
async def test_malformed_stream_configurations_are_refused(world: World, body: dict[str, Any],
                                                          needle: str) -> None:
    _app, token = await world.ssf_client()
    response = await world.tessera.http.post("/ssf/streams", headers=_auth(token), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert needle in response.json()["error_description"]


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_object_is_refused(world: World, raw: bytes) -> None:
    _app, token = await world.ssf_client()
    response = await world.tessera.http.post("/ssf/streams", headers=_auth(token), content=raw)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("body", [{"maxEvents": -1}, {"maxEvents": "10"}, {"ack": "x"},
                                  {"returnImmediately": "yes"}, {"wait": 1}])
async def test_malformed_poll_requests_are_refused(world: World, body: dict[str, Any]) -> None:
    _app, token = await world.ssf_client()
    created = await world.tessera.http.post("/ssf/streams", headers=_auth(token), json={
        "delivery": {"method": POLL}})
    url = created.json()["delivery"]["endpoint_url"]
    response = await world.tessera.http.post(url, headers=_auth(token), json=body)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_global_revocation_refuses_bad_subjects_and_other_tenants(world: World) -> None:
    http = world.tessera.http
    admin_token = await client_token(world.tessera, await admin_client(world.tessera),
                                     scope="tessera:admin")
    acme_user = await world.tessera.user("eve", tenant="acme")
    for body, status in [
        ({"sub_id": {"format": "email", "email": "a@b"}}, 400),
        ({"sub_id": {"format": "iss_sub", "iss": "https://other", "sub": "x"}}, 400),
        ({"sub": "x"}, 400),
        ({"sub_id": {"format": "opaque", "id": "nobody"}}, 404),
        ({"sub_id": {"format": "opaque", "id": acme_user}}, 404),
    ]:
        response = await http.post("/global-token-revocation", headers=_auth(admin_token),
                                   json=body)
        assert response.status_code == status, (body, response.text)
    unauthenticated = await http.post("/global-token-revocation",
                                      json={"sub_id": {"format": "opaque", "id": acme_user}})
    assert unauthenticated.status_code == 401


async def test_signals_off_unmounts_the_routes_and_clears_the_flags(
        tmp_path: Any, sqlite_store: Any, clock: Any) -> None:
    import httpx

    from tessera.identity.app import build_app
    from tests.conftest import make_identity, make_settings

    identity = await make_identity(make_settings(tmp_path, signals={"enabled": False}),
                                   sqlite_store, clock)
    assert identity.signals is None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                                 base_url=LOOP) as http:
        discovery = (await http.get("/.well-known/openid-configuration")).json()
        assert discovery["backchannel_logout_supported"] is False
        assert "global_token_revocation_endpoint" not in discovery
        assert (await http.get("/.well-known/ssf-configuration")).status_code == 404
        assert (await http.post("/global-token-revocation", json={})).status_code == 404
    await identity.audit.aclose()


async def test_a_paused_poll_stream_holds_its_sets(world: World) -> None:
    app, token = await world.ssf_client()
    http = world.tessera.http
    created = await http.post("/ssf/streams", headers=_auth(token), json={
        "delivery": {"method": POLL}, "events_requested": [CAEP_SESSION_REVOKED]})
    stream_id, url = created.json()["stream_id"], created.json()["delivery"]["endpoint_url"]
    await http.post("/ssf/status", headers=_auth(token),
                    json={"stream_id": stream_id, "status": "paused"})
    rp_app, _rp = await world.relying_party("rp")
    await world.tessera.user("alice")
    tokens = await world.tessera.login_tokens(rp_app, username="alice")
    await revoke(world.tessera, rp_app, tokens["refresh_token"])
    await pump(world.identity)
    receiver = SsfReceiver(app.client_id, LOOP, world.jwks, world.identity.clock.now)
    assert (await receiver.poll(http, url, token))["sets"] == {}
    await http.post("/ssf/status", headers=_auth(token),
                    json={"stream_id": stream_id, "status": "enabled"})
    assert len((await receiver.poll(http, url, token))["sets"]) == 1
