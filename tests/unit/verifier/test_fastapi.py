"""FastAPI dependencies: require_token / require_scopes / require_strict / require_tenant /
require_owner, the strict-route staleness rule with both fallbacks, and the error shape."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException

from tessera.core.clock import FixedClock
from tessera.verifier import VerifiedToken
from tessera.verifier.asgi import VerifierMiddleware
from tessera.verifier.fastapi import (
    install,
    require_owner,
    require_scopes,
    require_strict,
    require_tenant,
    require_token,
)
from tessera.verifier.service import VerifierService

from ._services import (
    IssuerStub,
    audit_events,
    basic,
    bearer,
    make_service,
    revoke_session,
)
from ._support import Minter

ORDERS = {"o-1": "user-1", "o-2": "user-2", "o-orphan": None}


class OwnerLookups:
    calls = 0


async def order_owner(order_id: str) -> str | None:
    OwnerLookups.calls += 1
    if order_id not in ORDERS:
        raise HTTPException(404, "no such order")
    return ORDERS[order_id]


Token = VerifiedToken


def build(service: VerifierService, *, with_handler: bool = True) -> FastAPI:
    app = FastAPI()
    if with_handler:
        install(app, service)
    else:
        app.state.tessera_verifier = service

    @app.get("/me")
    async def me(token: Annotated[Token, Depends(require_token)]) -> dict[str, Any]:
        return {"sub": token.sub, "scopes": sorted(token.scopes)}

    @app.get("/orders")
    async def orders(token: Annotated[Token, Depends(require_scopes("orders:read"))]
                     ) -> dict[str, Any]:
        return {"sub": token.sub}

    @app.get("/reports")
    async def reports(_: Annotated[Token, Depends(require_scopes("reports:read"))]) -> str:
        return "ok"

    @app.get("/admin/export")
    async def export(token: Annotated[Token, Depends(require_strict)]) -> dict[str, Any]:
        return {"sub": token.sub}

    @app.get("/admin/audit")
    async def audit(_: Annotated[Token, Depends(require_scopes("orders:read", strict=True))]
                    ) -> str:
        return "ok"

    @app.get("/tenants/{tenant_id}/orders")
    async def tenant_orders(tenant_id: str,
                            _: Annotated[Token, Depends(require_tenant("tenant_id"))]) -> str:
        return tenant_id

    @app.get("/bad-tenant-route")
    async def bad(_: Annotated[Token, Depends(require_tenant("tenant_id"))]) -> str:
        return "never"

    @app.get("/orders/{order_id}")
    async def order(order_id: str,
                    _: Annotated[Token, Depends(require_owner(order_owner,
                                                              scopes=("orders:read",)))]
                    ) -> dict[str, str]:
        return {"order_id": order_id}

    return app


async def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.fixture
async def client(service: VerifierService) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(build(service)) as client:
        yield client


def advance(service: VerifierService, seconds: float) -> None:
    assert isinstance(service.clock, FixedClock)
    service.clock.advance(seconds)


async def test_require_token_returns_the_verified_token(client: httpx.AsyncClient,
                                                        minter: Minter) -> None:
    response = await client.get("/me", headers=bearer(minter.mint()))
    assert response.status_code == 200
    assert response.json() == {"sub": "user-1", "scopes": ["orders:read", "orders:write"]}


async def test_refusals_are_flat_oauth_errors_once_installed(client: httpx.AsyncClient,
                                                            minter: Minter) -> None:
    token = minter.mint(aud="someone-else")
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description":
                               "The access token is not meant for this service."}
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert token not in response.text
    missing = await client.get("/me")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"


async def test_without_install_the_status_and_challenge_are_the_same(
        service: VerifierService) -> None:
    async with await client_for(build(service, with_handler=False)) as client:
        response = await client.get("/reports", headers=bearer("x.y.z"))
    assert response.status_code == 401
    assert response.json() == {"detail": {"error": "invalid_token",
                                          "error_description": "The access token is malformed."}}
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_require_scopes_is_403_with_the_missing_scope(client: httpx.AsyncClient,
                                                            minter: Minter) -> None:
    assert (await client.get("/orders", headers=bearer(minter.mint()))).status_code == 200
    response = await client.get("/reports", headers=bearer(minter.mint()))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'scope="reports:read"' in response.headers["www-authenticate"]


async def test_a_revoked_token_is_401(service: VerifierService, client: httpx.AsyncClient,
                                      minter: Minter) -> None:
    token = minter.mint()
    revoke_session(service)
    response = await client.get("/orders", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error_description"] == "The session was revoked."


async def test_require_strict_fails_closed_when_stale(service: VerifierService,
                                                      client: httpx.AsyncClient,
                                                      minter: Minter) -> None:
    token = minter.mint()
    assert (await client.get("/admin/export", headers=bearer(token))).status_code == 200
    advance(service, service.settings.strict_max_staleness + 0.5)
    response = await client.get("/admin/export", headers=bearer(token))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    strict_scoped = await client.get("/admin/audit", headers=bearer(token))
    assert strict_scoped.status_code == 503
    assert (await client.get("/orders", headers=bearer(token))).status_code == 200


@pytest.fixture
async def introspecting(minter: Minter) -> AsyncIterator[tuple[VerifierService, IssuerStub]]:
    service, stub = make_service(minter, strict_fallback="introspect")
    advance(service, service.settings.strict_max_staleness + 1)  # strict routes are stale
    yield service, stub
    await service.aclose()


async def test_stale_strict_route_introspects_and_allows_an_active_token(
        introspecting: tuple[VerifierService, IssuerStub], minter: Minter,
        caplog: pytest.LogCaptureFixture) -> None:
    service, stub = introspecting
    caplog.set_level(logging.INFO, logger="tessera.audit")
    claims = minter.claims(jti="jti-active")
    token = minter.mint(jti="jti-active")
    stub.active(claims)
    async with await client_for(build(service)) as client:
        response = await client.get("/admin/export", headers=bearer(token))
        assert response.status_code == 200
        assert (await client.get("/me", headers=bearer(token))).status_code == 200
    assert len(stub.introspected) == 1  # only the strict route asked
    call = stub.introspected[0]
    assert call["authorization"] == basic()
    assert call["form"] == {"token": token, "token_type_hint": "access_token"}
    reasons = [e["reason"] for e in audit_events(caplog.records)]
    assert reasons == ["introspected", "valid"]
    assert service.registry.get_sample_value(
        "tessera_verifier_introspections_total", {"result": "active"}) == 1


async def test_introspection_saying_inactive_is_401(
        introspecting: tuple[VerifierService, IssuerStub], minter: Minter) -> None:
    service, stub = introspecting
    stub.introspection = {"active": False}
    async with await client_for(build(service)) as client:
        response = await client.get("/admin/export", headers=bearer(minter.mint()))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


@pytest.mark.parametrize("answer", [
    httpx.ConnectError("refused"),
    httpx.ReadTimeout("slow"),
    httpx.Response(500, text="oops"),
    httpx.Response(200, text="not json"),
    httpx.Response(200, json=["not", "an", "object"]),
])
async def test_introspection_unreachable_or_broken_is_503(
        introspecting: tuple[VerifierService, IssuerStub], minter: Minter,
        answer: Any) -> None:
    service, stub = introspecting
    stub.introspection = answer
    async with await client_for(build(service)) as client:
        response = await client.get("/admin/export", headers=bearer(minter.mint()))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert service.registry.get_sample_value(
        "tessera_verifier_introspections_total", {"result": "error"}) == 1


async def test_introspected_claims_are_still_checked(
        introspecting: tuple[VerifierService, IssuerStub], minter: Minter) -> None:
    service, stub = introspecting
    token = minter.mint(jti="jti-x")
    async with await client_for(build(service)) as client:
        stub.active(minter.claims(jti="jti-x", scope="profile"))
        narrowed = await client.get("/admin/audit", headers=bearer(token))
        assert narrowed.status_code == 403
        stub.active(minter.claims(jti="jti-x", aud="other-service"))
        assert (await client.get("/admin/export", headers=bearer(token))).status_code == 401
        stub.active(minter.claims(jti="another-token"))
        assert (await client.get("/admin/export", headers=bearer(token))).status_code == 401
        stub.active({"scope": "orders:read"})  # no claims to check: malformed
        assert (await client.get("/admin/export", headers=bearer(token))).status_code == 401


async def test_a_locally_revoked_token_is_denied_before_introspection(
        introspecting: tuple[VerifierService, IssuerStub], minter: Minter) -> None:
    service, stub = introspecting
    revoke_session(service)
    advance(service, 3 * service.settings.max_staleness)
    stub.active(minter.claims())
    async with await client_for(build(service)) as client:
        response = await client.get("/admin/export", headers=bearer(minter.mint()))
    assert response.status_code == 401
    assert stub.introspected == []


async def test_require_tenant(client: httpx.AsyncClient, minter: Minter) -> None:
    token = minter.mint()
    assert (await client.get("/tenants/tenant-1/orders", headers=bearer(token))).text == (
        '"tenant-1"')
    other = await client.get("/tenants/tenant-2/orders", headers=bearer(token))
    assert other.status_code == 403
    assert other.json()["error_description"] == (
        "The access token does not grant access to this resource.")
    assert (await client.get("/tenants/tenant-1/orders")).status_code == 401


async def test_require_tenant_on_a_route_without_the_parameter_is_a_bug(
        client: httpx.AsyncClient, minter: Minter) -> None:
    with pytest.raises(RuntimeError, match="tenant_id"):
        await client.get("/bad-tenant-route", headers=bearer(minter.mint()))


async def test_require_owner(client: httpx.AsyncClient, minter: Minter) -> None:
    token = minter.mint()
    assert (await client.get("/orders/o-1", headers=bearer(token))).status_code == 200
    assert (await client.get("/orders/o-2", headers=bearer(token))).status_code == 403
    assert (await client.get("/orders/o-orphan", headers=bearer(token))).status_code == 403
    assert (await client.get("/orders/o-404", headers=bearer(token))).status_code == 404
    narrow = minter.mint(scope="profile")
    assert (await client.get("/orders/o-1", headers=bearer(narrow))).status_code == 403


async def test_require_owner_does_not_look_up_resources_for_strangers(
        client: httpx.AsyncClient) -> None:
    before = OwnerLookups.calls
    assert (await client.get("/orders/o-404")).status_code == 401
    assert (await client.get("/orders/o-1", headers=bearer("x.y.z"))).status_code == 401
    assert OwnerLookups.calls == before


async def test_middleware_and_dependency_record_one_allowed_decision(
        service: VerifierService, minter: Minter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tessera.audit")
    app = VerifierMiddleware(build(service), service)
    async with await client_for(app) as client:
        assert (await client.get("/orders", headers=bearer(minter.mint()))).status_code == 200
        assert (await client.get("/reports", headers=bearer(minter.mint()))).status_code == 403
    events = [(e["event"], e["reason"]) for e in audit_events(caplog.records)]
    assert events == [("access.allowed", "valid"), ("access.allowed", "valid"),
                      ("access.denied", "insufficient_scope")]


async def test_without_a_registered_service_the_dependency_refuses_to_guess(
        minter: Minter) -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(_: Annotated[Token, Depends(require_token)]) -> str:
        return "never"

    async with await client_for(app) as client:
        with pytest.raises(RuntimeError, match="no VerifierService"):
            await client.get("/me", headers=bearer(minter.mint()))


async def test_lifespan_registers_starts_and_stops_the_service(minter: Minter) -> None:
    service, stub = make_service(minter)
    app = FastAPI(lifespan=service.lifespan)
    async with app.router.lifespan_context(app):
        assert app.state.tessera_verifier is service
        assert stub.jwks_requests == 1  # keys fetched at start
    assert service.introspection is None


async def test_plain_function_api(service: VerifierService, minter: Minter) -> None:
    from tessera.verifier import Denied, Reason

    token = await service.check(minter.mint(), scopes=["orders:read"], tenant="tenant-1",
                                owner="user-1")
    assert token.sub == "user-1"
    with pytest.raises(Denied) as denied:
        await service.check(minter.mint(), scopes=["orders:admin"])
    assert (denied.value.reason, denied.value.status) == (Reason.INSUFFICIENT_SCOPE, 403)
    with pytest.raises(Denied) as missing:
        await service.check(None)
    assert missing.value.status == 401
    with pytest.raises(Denied) as owner:
        await service.check(minter.mint(), owner="user-2")
    assert owner.value.status == 403
    advance(service, 60)
    with pytest.raises(Denied) as stale:
        await service.check(minter.mint(), strict=True)
    assert (stale.value.reason, stale.value.status) == (Reason.STALE_STATE, 503)
