"""VerifierMiddleware against a Starlette app, with tokens signed by real keys and the
JWKS served by an httpx MockTransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.core.clock import FixedClock
from tessera.verifier import MAX_TOKEN_LENGTH, VerifiedToken
from tessera.verifier.asgi import RouteRule, VerifierMiddleware
from tessera.verifier.service import VerifierService

from ._services import bearer, fresh, make_service, revoke_session
from ._support import Minter, PrivateKey, generate


async def whoami(request: Request) -> JSONResponse:
    token = request.state.tessera_token
    assert isinstance(token, VerifiedToken)
    return JSONResponse({"sub": token.sub, "tid": token.tid})


async def health(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


ROUTES = [
    RouteRule("/orders", scopes=frozenset({"orders:read"})),
    RouteRule("/reports", scopes=frozenset({"reports:read"})),
    RouteRule("/admin/export", strict=True),
    RouteRule("/tenants/{tenant_id}/orders", tenant_param="tenant_id"),
    RouteRule("/catalogue", accept_stale=True),
]


def build(service: VerifierService) -> VerifierMiddleware:
    app = Starlette(routes=[
        Route("/orders", whoami), Route("/reports", whoami), Route("/admin/export", whoami),
        Route("/tenants/{tenant_id}/orders", whoami), Route("/anything", whoami),
        Route("/catalogue", whoami), Route("/healthz", health),
    ])
    return VerifierMiddleware(app, service, routes=ROUTES, public=["/healthz"])


@pytest.fixture
async def client(service: VerifierService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://orders.test") as client:
        yield client


def assert_refusal(response: httpx.Response, status: int, error: str, token: str = "") -> None:
    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    if token:
        assert token not in response.text
        assert token not in response.headers.get("www-authenticate", "")
    assert "Traceback" not in response.text


async def test_a_valid_token_reaches_the_app_with_the_verified_token(
        client: httpx.AsyncClient, minter: Minter) -> None:
    response = await client.get("/orders", headers=bearer(minter.mint()))
    assert response.status_code == 200
    assert response.json() == {"sub": "user-1", "tid": "tenant-1"}


@pytest.mark.parametrize("kid", ["rs-1", "es-1", "ed-1"])
async def test_every_algorithm_is_accepted(client: httpx.AsyncClient, minter: Minter,
                                           kid: str) -> None:
    assert (await client.get("/anything", headers=bearer(minter.mint(kid)))).status_code == 200


async def test_no_token_is_401_with_a_bare_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/orders")
    assert_refusal(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_another_scheme_counts_as_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/orders", headers={"authorization": "Basic dXNlcjpwdw=="})
    assert_refusal(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("value", ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b",
                                   "Bearer ä.b.c"])
async def test_a_malformed_header_is_401(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/orders", headers={"authorization": value.encode()})
    assert_refusal(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_two_authorization_headers_are_401(client: httpx.AsyncClient,
                                                  minter: Minter) -> None:
    token = minter.mint()
    headers = [("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")]
    assert_refusal(await client.get("/orders", headers=headers), 401, "invalid_token", token)


async def test_an_oversized_token_is_401_and_not_echoed(client: httpx.AsyncClient) -> None:
    token = "a" * (MAX_TOKEN_LENGTH + 1)
    response = await client.get("/orders", headers=bearer(token))
    assert_refusal(response, 401, "invalid_token", token)


async def test_a_forged_signature_is_401_without_the_token_in_the_answer(
        client: httpx.AsyncClient, private_keys: dict[str, tuple[str, PrivateKey]]) -> None:
    forger = Minter({"rs-1": ("RS256", generate("RS256"))})
    token = forger.mint()
    response = await client.get("/orders", headers=bearer(token))
    assert_refusal(response, 401, "invalid_token", token)
    assert response.json()["error_description"] == "The access token signature is invalid."


async def test_an_expired_token_is_401(service: VerifierService, client: httpx.AsyncClient,
                                       minter: Minter) -> None:
    token = minter.mint()
    assert isinstance(service.clock, FixedClock)
    service.clock.advance(3600)
    fresh(service)
    response = await client.get("/orders", headers=bearer(token))
    assert_refusal(response, 401, "invalid_token", token)
    assert response.json()["error_description"] == "The access token expired."


async def test_a_missing_scope_is_403_naming_the_scope(client: httpx.AsyncClient,
                                                       minter: Minter) -> None:
    response = await client.get("/reports", headers=bearer(minter.mint()))
    assert_refusal(response, 403, "insufficient_scope")
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", error_description="The access token lacks a '
        'required scope.", scope="reports:read"')


async def test_a_revoked_session_is_401_as_soon_as_the_event_is_applied(
        service: VerifierService, client: httpx.AsyncClient, minter: Minter) -> None:
    token = minter.mint()
    assert (await client.get("/orders", headers=bearer(token))).status_code == 200
    revoke_session(service, "sid-1")
    response = await client.get("/orders", headers=bearer(token))
    assert_refusal(response, 401, "invalid_token", token)
    assert response.json()["error_description"] == "The session was revoked."
    other = minter.mint(sid="sid-2")
    assert (await client.get("/orders", headers=bearer(other))).status_code == 200


async def test_public_paths_need_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200


async def test_unmatched_paths_still_need_a_token(client: httpx.AsyncClient,
                                                  minter: Minter) -> None:
    assert (await client.get("/anything")).status_code == 401
    assert (await client.get("/anything", headers=bearer(minter.mint()))).status_code == 200


async def test_each_route_has_a_bound_and_only_an_opt_in_accepts_past_it(
        service: VerifierService, client: httpx.AsyncClient, minter: Minter,
        caplog: pytest.LogCaptureFixture) -> None:
    token = minter.mint()
    assert (await client.get("/admin/export", headers=bearer(token))).status_code == 200
    assert isinstance(service.clock, FixedClock)
    settings = service.settings
    service.clock.advance(settings.strict_max_staleness + 1)  # past the strict bound only
    response = await client.get("/admin/export", headers=bearer(token))
    assert_refusal(response, 503, "temporarily_unavailable", token)
    assert response.headers["retry-after"] == "5"
    assert "www-authenticate" not in response.headers
    assert (await client.get("/orders", headers=bearer(token))).status_code == 200
    service.clock.advance(settings.max_staleness)  # past the ordinary bound as well
    assert_refusal(await client.get("/orders", headers=bearer(token)), 503,
                   "temporarily_unavailable", token)
    assert (await client.get("/anything", headers=bearer(token))).status_code == 503
    with caplog.at_level("WARNING", logger="tessera.verifier"):
        assert (await client.get("/catalogue", headers=bearer(token))).status_code == 200
    assert any("accept_stale" in r.getMessage() for r in caplog.records)
    assert service.registry.get_sample_value(
        "tessera_verifier_decisions_total",
        {"outcome": "allowed", "reason": "stale_accepted"}) == 1
    fresh(service)
    assert (await client.get("/admin/export", headers=bearer(token))).status_code == 200
    assert (await client.get("/orders", headers=bearer(token))).status_code == 200


async def test_a_verifier_that_never_loaded_refuses_every_route(minter: Minter) -> None:
    service, _ = make_service(minter, fed=False)
    transport = httpx.ASGITransport(app=build(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/admin/export", "/orders", "/anything", "/catalogue"):
            response = await client.get(path, headers=bearer(minter.mint()))
            assert response.status_code == 503, path
            assert response.headers["retry-after"] == "5"
        assert (await client.get("/healthz")).status_code == 200  # public stays public
    await service.aclose()


async def test_strict_by_default_makes_every_route_strict(minter: Minter) -> None:
    service, _ = make_service(minter, strict_by_default=True)
    transport = httpx.ASGITransport(app=build(service))
    assert isinstance(service.clock, FixedClock)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/orders", headers=bearer(minter.mint()))).status_code == 200
        service.clock.advance(service.settings.strict_max_staleness + 1)
        assert (await client.get("/orders", headers=bearer(minter.mint()))).status_code == 503
        fresh(service)
        assert (await client.get("/orders", headers=bearer(minter.mint()))).status_code == 200
    await service.aclose()


def test_a_strict_route_cannot_opt_in_to_stale_state() -> None:
    with pytest.raises(ValueError, match="accept_stale"):
        RouteRule("/x", strict=True, accept_stale=True)


async def test_tenant_segment_must_match_the_token(client: httpx.AsyncClient,
                                                   minter: Minter) -> None:
    token = minter.mint()
    ok = await client.get("/tenants/tenant-1/orders", headers=bearer(token))
    assert ok.status_code == 200
    other = await client.get("/tenants/tenant-2/orders", headers=bearer(token))
    assert_refusal(other, 403, "insufficient_scope", token)


async def test_websockets_are_closed_before_accept_without_a_token(
        service: VerifierService) -> None:
    called = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal called
        called = True

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    middleware = VerifierMiddleware(app, service)
    await middleware({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert not called


async def test_lifespan_messages_pass_through(service: VerifierService) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def noop(*_: Any) -> Any:
        return {}

    await VerifierMiddleware(app, service)({"type": "lifespan"}, noop, noop)
    assert seen == ["lifespan"]


def test_route_rules_match_segments_wildcards_and_methods() -> None:
    rule = RouteRule("/tenants/{tenant_id}/orders/{order_id}")
    assert rule.match("GET", "/tenants/t1/orders/o9") == {"tenant_id": "t1", "order_id": "o9"}
    assert rule.match("GET", "/tenants/t1/orders") is None
    assert rule.match("GET", "/tenants/t1/x/orders/o9") is None
    wildcard = RouteRule("/static/*", methods=frozenset({"get"}))
    assert wildcard.match("GET", "/static/a/b.css") == {}
    assert wildcard.match("POST", "/static/a") is None
    assert RouteRule("/a.b").match("GET", "/aXb") is None


def test_route_rules_reject_bad_definitions() -> None:
    with pytest.raises(ValueError, match="starts with"):
        RouteRule("orders")
    with pytest.raises(ValueError, match="tenant_param"):
        RouteRule("/orders", tenant_param="tenant_id")


async def test_a_method_specific_rule_applies_only_to_its_methods(
        service: VerifierService, minter: Minter) -> None:
    app = Starlette(routes=[Route("/orders", whoami, methods=["GET", "POST"])])
    middleware = VerifierMiddleware(app, service, routes=[
        RouteRule("/orders", methods=frozenset({"POST"}), scopes=frozenset({"orders:admin"}))])
    transport = httpx.ASGITransport(app=middleware)
    token = minter.mint()
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/orders", headers=bearer(token))).status_code == 200
        assert (await client.post("/orders", headers=bearer(token))).status_code == 403
