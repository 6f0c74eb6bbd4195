"""The decision endpoint end to end (ASGI): the header contract for nginx, Traefik and
Envoy, refusals, correlation ids, decision events and metrics."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from tessera.core.secrets import token_hash
from tessera.gateway import parse_policy

from ._support import (
    AUDIENCE,
    CLIENT_ID,
    DOWNSTREAM,
    MFA,
    NOW,
    POLICY,
    IdentityStub,
    basic,
    gateway,
    mint,
)

IDENTITY = {"x-tessera-subject": "user-1", "x-tessera-tenant": "tenant-1",
            "x-tessera-scopes": "orders:read orders:write",
            "x-tessera-sid-hash": token_hash("sid-1"), "x-tessera-client": "web-app"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def identity_of(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("x-tessera-")}


def assert_refused(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error and set(body) == {"error", "error_description"}
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["x-request-id"]
    assert response.headers["cache-control"] == "no-store"
    assert not identity_of(response)
    return body


def audit(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "tessera.audit"]


@pytest.mark.parametrize("style", ["nginx", "traefik", "envoy"])
async def test_allowed_with_the_identity_headers(style: str) -> None:
    async with gateway() as gw:
        call = getattr(gw, style)
        response = await call("/orders/7?page=2", token=mint(), x_request_id="req-1")
        assert response.status_code == 200, response.text
        assert response.content == b""
        assert identity_of(response) == IDENTITY
        assert response.headers["x-request-id"] == "req-1"
        assert response.headers["cache-control"] == "no-store"


async def test_any_method_is_accepted_on_forward_auth() -> None:
    async with gateway() as gw:
        headers = {"x-original-uri": "/orders/1", "x-original-method": "GET",
                   "host": "api.example", "authorization": f"Bearer {mint()}"}
        for method in ("GET", "POST", "HEAD", "PUT", "OPTIONS"):
            response = await gw.http.request(method, "/forward-auth", headers=headers)
            assert response.status_code == 200, method


async def test_public_routes_need_no_token_and_carry_empty_identity_headers() -> None:
    async with gateway() as gw:
        response = await gw.nginx("/healthz", host="anything.example")
        assert response.status_code == 200
        assert identity_of(response) == dict.fromkeys(IDENTITY, "")


async def test_no_token_is_a_bare_bearer_challenge() -> None:
    async with gateway() as gw:
        response = await gw.nginx("/orders/1")
        body = assert_refused(response, 401, "invalid_token")
        assert response.headers["www-authenticate"] == "Bearer"
        assert body["error_description"] == "An access token is required."


@pytest.mark.parametrize(("claims", "description"), [
    ({"exp": int(NOW) - 120}, "The access token expired."),
    ({"aud": ["https://elsewhere.example"]}, "The access token is not meant for this service."),
    ({"iss": "https://evil.example"}, "The access token was issued by another issuer."),
])
async def test_invalid_tokens_are_401(claims: dict[str, Any], description: str) -> None:
    async with gateway() as gw:
        body = assert_refused(await gw.traefik("/orders/1", token=mint(**claims)), 401,
                              "invalid_token")
        assert body["error_description"] == description


async def test_a_tampered_token_is_401() -> None:
    async with gateway() as gw:
        header, payload, signature = mint().split(".")
        forged = f"{header}.{payload}.{signature[:-4]}AAAA"
        assert_refused(await gw.envoy("/orders/1", token=forged), 401, "invalid_token")


async def test_a_revoked_session_is_401() -> None:
    async with gateway() as gw:
        token = mint()
        assert (await gw.nginx("/orders/1", token=token)).status_code == 200
        gw.revoke_session("sid-1")
        body = assert_refused(await gw.nginx("/orders/1", token=token), 401, "invalid_token")
        assert body["error_description"] == "The session was revoked."


async def test_insufficient_scope_is_403_with_the_scope() -> None:
    async with gateway() as gw:
        response = await gw.nginx("/orders/1", token=mint(scope="profile"))
        assert_refused(response, 403, "insufficient_scope")
        assert response.headers["www-authenticate"].endswith('scope="orders:read"')


async def test_acr_too_low_is_an_rfc9470_challenge() -> None:
    async with gateway() as gw:
        response = await gw.nginx("/orders/1", method="POST", token=mint())
        body = assert_refused(response, 401, "insufficient_user_authentication")
        assert response.headers["www-authenticate"] == (
            'Bearer error="insufficient_user_authentication", error_description="A different '
            'authentication level is required.", acr_values="urn:tessera:acr:mfa", '
            'max_age="600"')
        assert body["error_description"] == "A different authentication level is required."
        assert (await gw.nginx("/orders/1", method="POST", token=mint(acr=MFA))
                ).status_code == 200
        old = await gw.nginx("/orders/1", method="POST",
                             token=mint(acr=MFA, auth_time=int(NOW) - 3600))
        assert_refused(old, 401, "insufficient_user_authentication")


async def test_every_route_has_a_staleness_bound_and_strict_ones_a_tighter_one() -> None:
    async with gateway() as gw:
        token = mint(exp=int(NOW) + 600)
        assert (await gw.envoy("/admin/users", token=token)).status_code == 200
        gw.clock.advance(11)  # past strict_max_staleness (10 s), within max_staleness (30 s)
        stale = await gw.envoy("/admin/users", token=token)
        body = assert_refused(stale, 401, "temporarily_unavailable")
        assert body["error_description"] == "Revocation state is out of date; try again later."
        assert (await gw.envoy("/orders/1", token=token)).status_code == 200  # not strict
        gw.clock.advance(20)  # past max_staleness: every route
        assert_refused(await gw.envoy("/orders/1", token=token), 401,
                       "temporarily_unavailable")
        gw.fresh()
        assert (await gw.envoy("/admin/users", token=token)).status_code == 200


async def test_a_gateway_that_never_loaded_refuses_every_route() -> None:
    policy = {**POLICY, "routes": [*POLICY["routes"], {
        "match": {"path": "/catalogue/**"}, "audience": AUDIENCE, "accept_stale": True}]}
    async with gateway(policy) as gw:
        gw.authorizer.service.state.loaded = False
        for path in ("/admin/users", "/orders/1", "/catalogue/1"):
            assert_refused(await gw.envoy(path, token=mint()), 401, "temporarily_unavailable")


async def test_a_route_may_opt_in_to_accept_while_stale_and_it_is_counted() -> None:
    policy = {**POLICY, "routes": [*POLICY["routes"], {
        "match": {"path": "/catalogue/**"}, "audience": AUDIENCE, "accept_stale": True}]}
    async with gateway(policy) as gw:
        token = mint(exp=int(NOW) + 600)
        gw.clock.advance(31)
        assert (await gw.envoy("/catalogue/1", token=token)).status_code == 200
        assert_refused(await gw.envoy("/orders/1", token=token), 401,
                       "temporarily_unavailable")
        assert gw.authorizer.service.registry.get_sample_value(
            "tessera_verifier_decisions_total",
            {"outcome": "allowed", "reason": "stale_accepted"}) == 1
        gw.revoke_session()  # a known revocation is enforced regardless
        assert (await gw.envoy("/catalogue/1", token=token)).status_code == 401


async def test_unknown_routes_are_denied_by_default() -> None:
    async with gateway() as gw:
        for response in (await gw.nginx("/nowhere", token=mint()),
                         await gw.nginx("/orders/1", host="other.example", token=mint()),
                         await gw.nginx("/orders/1", method="DELETE", token=mint())):
            body = assert_refused(response, 403, "access_denied")
            assert body["error_description"] == ("No route of the gateway policy allows "
                                                 "this request.")


async def test_allow_authenticated_default_needs_a_token_for_the_gateway() -> None:
    policy = {"default": "allow-authenticated", "routes": []}
    async with gateway(policy) as gw:
        assert (await gw.nginx("/any", token=mint(aud=["tessera-gateway"]))).status_code == 200
        assert (await gw.nginx("/any", token=mint())).status_code == 401
        assert (await gw.nginx("/any")).status_code == 401


async def test_exchange_to_adds_the_exchanged_token_and_caches_it() -> None:
    async with gateway() as gw:
        token = mint()
        first = await gw.nginx("/downstream/1", token=token)
        assert first.status_code == 200, first.text
        assert first.headers["x-tessera-token"] == "exchanged-1"
        assert identity_of(first)["x-tessera-subject"] == "user-1"
        second = await gw.traefik("/downstream/2", token=token)
        assert second.headers["x-tessera-token"] == "exchanged-1"
        assert len(gw.stub.exchanges) == 1
        assert gw.stub.exchanges[0]["audience"] == DOWNSTREAM
        assert gw.stub.exchanges[0]["scope"] == "orders:read"
        assert gw.stub.exchanges[0]["subject_token"] == token
        assert gw.stub.authorizations == [basic()]
        assert "x-tessera-token" not in (await gw.nginx("/orders/1", token=token)).headers
        metrics = (await gw.http.get("/metrics")).text
        assert 'tessera_gateway_exchanges_total{result="hit"} 1.0' in metrics
        assert 'tessera_gateway_exchanges_total{result="miss"} 1.0' in metrics


@pytest.mark.parametrize(("answer", "status", "error"), [
    (httpx.ConnectError("identity down"), 401, "temporarily_unavailable"),
    (httpx.Response(502), 401, "temporarily_unavailable"),
    (httpx.Response(400, json={"error": "invalid_grant"}), 401, "invalid_token"),
    (httpx.Response(400, json={"error": "invalid_target"}), 401, "temporarily_unavailable"),
    (httpx.Response(400, json={"error": "invalid_scope"}), 403, "insufficient_scope"),
])
async def test_exchange_failures_are_never_5xx(answer: httpx.Response | Exception, status: int,
                                               error: str) -> None:
    async with gateway() as gw:
        gw.stub.exchange_answer = answer
        assert_refused(await gw.nginx("/downstream/1", token=mint()), status, error)


async def test_no_keys_is_401_temporarily_unavailable() -> None:
    async with gateway(stub=IdentityStub(jwks_down=True)) as gw:
        assert_refused(await gw.nginx("/orders/1", token=mint()), 401, "temporarily_unavailable")


async def test_an_internal_error_is_logged_and_answered_401(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    async with gateway() as gw:
        async def broken(*args: Any) -> Any:
            raise RuntimeError("bug")

        monkeypatch.setattr(gw.authorizer, "verify", broken)
        with caplog.at_level(logging.INFO):
            response = await gw.nginx("/orders/1", token=mint(), x_request_id="req-bug")
        assert_refused(response, 401, "temporarily_unavailable")
        assert any("req-bug" in r.getMessage() and r.exc_info for r in caplog.records)
        (event,) = audit(caplog)
        assert event["reason"] == "internal_error" and event["correlation_id"] == "req-bug"


async def test_exchange_routes_need_the_gateways_client() -> None:
    from tessera.gateway import GatewayConfigError, create_gateway
    from tessera.verifier.settings import VerifierSettings

    settings = VerifierSettings(issuer="https://id", audience="gw", source="none")
    with pytest.raises(GatewayConfigError, match="TESSERA_VERIFIER_CLIENT_ID"):
        create_gateway(parse_policy({"routes": [{"match": {"path": "/x"},
                                                  "exchange_to": "https://d"}]}), settings)


# -- correlation ids ---------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "expected"), [
    ({"x_request_id": "abc-123"}, "abc-123"),
    ({"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, TRACE),
    ({"x_request_id": "bad value!", "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}, TRACE),
])
async def test_correlation_id_is_accepted_or_derived_and_returned(
        headers: dict[str, str], expected: str) -> None:
    async with gateway() as gw:
        for response in (await gw.nginx("/orders/1", token=mint(), **headers),
                         await gw.nginx("/nowhere", **headers)):
            assert response.headers["x-request-id"] == expected


async def test_an_unsafe_request_id_is_replaced_by_a_minted_one() -> None:
    async with gateway() as gw:
        response = await gw.nginx("/orders/1", token=mint(), x_request_id="<script>")
        minted = response.headers["x-request-id"]
        assert len(minted) == 32 and int(minted, 16) >= 0
        again = await gw.nginx("/orders/1", token=mint())
        assert again.headers["x-request-id"] != minted


async def test_decisions_are_logged_with_rule_and_correlation_id(
        caplog: pytest.LogCaptureFixture) -> None:
    async with gateway() as gw:
        token = mint()
        with caplog.at_level(logging.INFO, logger="tessera.audit"):
            await gw.nginx("/orders/1", token=token, x_request_id="req-ok")
            await gw.nginx("/orders/1", method="POST", token=token, x_request_id="req-acr")
            await gw.nginx("/nowhere", x_request_id="req-none")
        allowed, step_up, unmatched = audit(caplog)
        assert allowed["event"] == "access.allowed" and allowed["status"] == 200
        assert allowed["route"] == "routes[1] GET api.example/orders/**"
        assert allowed["correlation_id"] == "req-ok"
        assert allowed["service"] == "tessera-gateway"
        assert allowed["user_id"] == "user-1" and allowed["sid_hash"] == token_hash("sid-1")
        assert allowed["token_hash"] == token_hash(token)
        assert token not in json.dumps(allowed)
        assert step_up["event"] == "access.denied" and step_up["reason"] == "acr_too_low"
        assert step_up["route"] == "routes[2] POST api.example/orders/**"
        assert step_up["status"] == 401
        assert unmatched["reason"] == "no_route" and unmatched["route"] == "none"
        assert unmatched["correlation_id"] == "req-none"


async def test_metrics_and_health() -> None:
    async with gateway() as gw:
        await gw.nginx("/orders/1", token=mint())
        await gw.nginx("/nowhere")
        metrics = await gw.http.get("/metrics")
        assert metrics.status_code == 200
        text = metrics.text
        assert 'tessera_gateway_decisions_total{rule="routes[1]",status="200"} 1.0' in text
        assert 'tessera_gateway_decisions_total{rule="none",status="403"} 1.0' in text
        assert 'tessera_verifier_decisions_total{outcome="allowed",reason="valid"} 1.0' in text
        assert 'tessera_verifier_decisions_total{outcome="denied",reason="no_route"} 1.0' in text
        health = await gw.http.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "routes": 5, "revocation_lag_seconds": 0.0,
                                 "stale": False}


async def test_identity_values_outside_printable_ascii_are_percent_encoded() -> None:
    async with gateway() as gw:
        response = await gw.nginx("/orders/1", token=mint(sub="zoë\r\nx", tid="t 1"))
        assert response.status_code == 200
        assert response.headers["x-tessera-subject"] == "zo%C3%AB%0D%0Ax"
        assert response.headers["x-tessera-tenant"] == "t 1"


async def test_a_client_credentials_token_has_an_empty_sid_hash() -> None:
    async with gateway() as gw:
        response = await gw.nginx("/orders/1", token=mint(sid=None, sv=None,
                                                          client_id=CLIENT_ID))
        assert response.status_code == 200
        assert response.headers["x-tessera-sid-hash"] == ""
        assert response.headers["x-tessera-client"] == CLIENT_ID


def test_the_audience_of_the_test_policy() -> None:
    assert AUDIENCE == "https://api.example"
