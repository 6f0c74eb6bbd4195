"""RFC 8693 token exchange: narrower audience and scope, sid/sv kept, act recorded."""

from __future__ import annotations

from typing import Any

from tessera.application import admin
from tessera.identity.compose import Identity
from tests.support import AppClient, TesseraDriver
from tests.tokens import claims_of

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"


async def gateway(tessera: TesseraDriver, scope: str = "api:read api:write") -> AppClient:
    """A gateway fronting https://api.example (the web client's audience): trusted to
    exchange tokens addressed there, and those naming it."""
    return await tessera.client(grants=("urn:ietf:params:oauth:grant-type:token-exchange",),
                                scope=scope, audiences=("https://orders.internal",),
                                subject_audiences=("https://api.example",
                                                   "https://orders.internal"))


async def exchange(tessera: TesseraDriver, client: AppClient, subject: str,
                   **extra: str) -> Any:
    data = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": AT,
            "audience": "https://orders.internal"} | extra
    return await tessera.token(client, **data)


async def test_exchange_narrows_and_keeps_the_session(tessera: TesseraDriver) -> None:
    web = await tessera.web_client()
    await tessera.user()
    user_token = (await tessera.login_tokens(web, scope="openid api:read api:write"))[
        "access_token"]
    gw = await gateway(tessera)
    response = await exchange(tessera, gw, user_token, scope="api:read")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == AT and body["scope"] == "api:read"
    assert "refresh_token" not in body
    new, old = claims_of(body["access_token"]), claims_of(user_token)
    assert new["aud"] == "https://orders.internal" and new["scope"] == "api:read"
    assert (new["sub"], new["sid"], new["sv"], new["tid"]) == (
        old["sub"], old["sid"], old["sv"], old["tid"])
    assert new["act"] == {"sub": gw.client_id} and new["client_id"] == gw.client_id
    assert new["exp"] <= old["exp"]
    # an exchanged token can be exchanged again: the act chain nests
    gw2 = await gateway(tessera)
    again = await exchange(tessera, gw2, body["access_token"])
    assert again.status_code == 200
    assert claims_of(again.json()["access_token"])["act"] == {
        "sub": gw2.client_id, "act": {"sub": gw.client_id}}


async def test_revoking_the_session_kills_derived_tokens_and_further_exchange(
        tessera: TesseraDriver, identity: Identity) -> None:
    web = await tessera.web_client()
    user_id = await tessera.user()
    user_token = (await tessera.login_tokens(web))["access_token"]
    gw = await gateway(tessera)
    derived = (await exchange(tessera, gw, user_token)).json()["access_token"]
    await admin.revoke(identity.admin, user_id=user_id, reason="test", actor="test")
    introspected = await tessera.introspect(gw, derived)
    assert introspected == {"active": False}
    refused = await exchange(tessera, gw, user_token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_exchange_errors(tessera: TesseraDriver) -> None:
    web = await tessera.web_client()
    await tessera.user()
    user_token = (await tessera.login_tokens(web))["access_token"]  # scope openid api:read
    gw = await gateway(tessera)
    wrong_target = await exchange(tessera, gw, user_token, audience="https://elsewhere")
    assert wrong_target.status_code == 400 and wrong_target.json()["error"] == "invalid_target"
    broader = await exchange(tessera, gw, user_token, scope="api:write")
    assert broader.json()["error"] == "invalid_scope"
    forged = await exchange(tessera, gw, user_token[:-4] + "AAAA")
    assert forged.json()["error"] == "invalid_grant"
    bad_type = await exchange(tessera, gw, user_token, subject_token_type="urn:x")
    assert bad_type.json()["error"] == "invalid_request"
    not_allowed = await tessera.client()  # no token-exchange grant
    response = await exchange(tessera, not_allowed, user_token)
    assert response.json()["error"] == "unauthorized_client"


async def test_exchange_is_audited_with_hashes_only(tessera: TesseraDriver,
                                                    identity: Identity) -> None:
    web = await tessera.web_client()
    await tessera.user()
    user_token = (await tessera.login_tokens(web))["access_token"]
    gw = await gateway(tessera)
    new_token = (await exchange(tessera, gw, user_token)).json()["access_token"]
    await identity.audit.aclose()
    async with identity.store.unit_of_work(read_only=True) as uow:
        rows = await uow.audit.query(event="token.exchanged")
    assert len(rows) == 1 and rows[0].fields["actor"] == gw.client_id
    assert user_token not in str(rows[0].fields) and new_token not in str(rows[0].fields)


RT = "urn:ietf:params:oauth:token-type:refresh_token"
IDT = "urn:ietf:params:oauth:token-type:id_token"


async def exchanging_web_client(tessera: TesseraDriver) -> AppClient:
    return await tessera.client(
        grants=("authorization_code", "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange"),
        scope="api:read api:write", audiences=("https://orders.internal",))


async def test_refresh_and_id_tokens_are_subjects_for_their_own_client_only(
        tessera: TesseraDriver) -> None:
    web = await exchanging_web_client(tessera)
    await tessera.user()
    tokens = await tessera.login_tokens(web, scope="openid api:read")
    by_refresh = await exchange(tessera, web, tokens["refresh_token"], subject_token_type=RT)
    assert by_refresh.status_code == 200, by_refresh.text
    derived = claims_of(by_refresh.json()["access_token"])
    assert derived["scope"] == "api:read" and derived["sid"] == claims_of(
        tokens["access_token"])["sid"]
    by_id = await exchange(tessera, web, tokens["id_token"], subject_token_type=IDT)
    assert by_id.status_code == 200, by_id.text
    assert claims_of(by_id.json()["access_token"])["scope"] == ""  # identity only
    other = await gateway(tessera)
    stolen = await exchange(tessera, other, tokens["refresh_token"], subject_token_type=RT)
    assert stolen.json()["error"] == "invalid_grant"
    foreign_id = await exchange(tessera, other, tokens["id_token"], subject_token_type=IDT)
    assert foreign_id.json()["error"] == "invalid_grant"  # aud is the RP, not this client


async def test_per_client_policy_limits_audience_scope_lifetime_and_depth(
        tessera: TesseraDriver, identity: Identity) -> None:
    from tessera.protocol.rfc8693 import ExchangePolicy

    web = await tessera.web_client()
    await tessera.user()
    user_token = (await tessera.login_tokens(web, scope="openid api:read api:write"))[
        "access_token"]
    gw = await gateway(tessera)
    grant = next(g for g in identity.token._grants.values()
                 if g.grant_type == EXCHANGE)
    grant._policies[gw.client_id] = ExchangePolicy(
        audiences={"https://orders.internal": frozenset({"api:read"})}, max_lifetime=60,
        max_act_depth=1)
    ok = await exchange(tessera, gw, user_token)
    assert ok.status_code == 200 and ok.json()["scope"] == "api:read"
    assert ok.json()["expires_in"] <= 60
    assert (await exchange(tessera, gw, user_token, scope="api:write")).json()[
        "error"] == "invalid_scope"
    deeper = await exchange(tessera, gw, ok.json()["access_token"])
    assert deeper.json()["error"] == "invalid_grant"  # act chain would exceed depth 1


async def test_exchange_without_a_target_keeps_the_subject_tokens_audience(
        tessera: TesseraDriver) -> None:
    """RFC 8693 §2.1: neither ``audience`` nor ``resource`` → the subject token's own
    audience (what openid-client sends for a scope-only narrowing), not invalid_target."""
    web = await tessera.web_client()
    await tessera.user()
    user_token = (await tessera.login_tokens(web, scope="openid api:read api:write"))[
        "access_token"]
    gw = await gateway(tessera)
    data = {"grant_type": EXCHANGE, "subject_token": user_token, "subject_token_type": AT,
            "scope": "api:read"}
    response = await tessera.token(gw, **data)
    assert response.status_code == 200, response.text
    new, old = claims_of(response.json()["access_token"]), claims_of(user_token)
    assert new["aud"] == old["aud"] and new["scope"] == "api:read"
    assert new["act"] == {"sub": gw.client_id} and new["exp"] <= old["exp"]
    # without scope either: the subject's scopes the client may hold
    plain = await tessera.token(gw, **{k: v for k, v in data.items() if k != "scope"})
    assert plain.status_code == 200, plain.text
    assert claims_of(plain.json()["access_token"])["aud"] == old["aud"]
    # narrowing still cannot widen
    broader = await tessera.token(gw, **(data | {"scope": "api:admin"}))
    assert broader.status_code == 400 and broader.json()["error"] == "invalid_scope"
