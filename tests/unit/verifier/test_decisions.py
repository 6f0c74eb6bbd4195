"""Decision events: one access.allowed / access.denied JSON line per decision on
``tessera.audit``, with hashes and claims but never the raw token."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tessera.core.secrets import token_hash
from tessera.observability.events import ACCESS_ALLOWED, ACCESS_DENIED
from tessera.verifier import Denied
from tessera.verifier.asgi import RouteRule, VerifierMiddleware
from tessera.verifier.service import VerifierService

from ._services import audit_events, bearer, fresh, make_service, revoke_session
from ._support import NOW, Minter


async def ok(_: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture
def ticks() -> Any:
    """A timer that advances 42 µs per reading."""
    counter = itertools.count()
    return lambda: next(counter) * 0.000042


@pytest.fixture
async def service(minter: Minter, ticks: Any) -> AsyncIterator[VerifierService]:
    service, _ = make_service(minter, timer=ticks)
    fresh(service)
    yield service
    await service.aclose()


@pytest.fixture
async def client(service: VerifierService) -> AsyncIterator[httpx.AsyncClient]:
    app = VerifierMiddleware(
        Starlette(routes=[Route("/orders/{order_id}", ok), Route("/healthz", ok)]), service,
        routes=[RouteRule("/orders/{order_id}", scopes=frozenset({"orders:read"}))],
        public=["/healthz"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        yield client


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="tessera.audit")
    return caplog


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return list(audit_events(caplog.records))


async def test_an_allowed_request_is_one_complete_event(
        client: httpx.AsyncClient, minter: Minter, audit: pytest.LogCaptureFixture) -> None:
    token = minter.mint(jti="jti-allowed")
    response = await client.get("/orders/o-1",
                                headers={**bearer(token), "x-request-id": "req-123"})
    assert response.status_code == 200
    [event] = events(audit)
    assert event == {
        "event": ACCESS_ALLOWED, "at": NOW, "service": "orders-api",
        "route": "/orders/{order_id}", "decision": "allowed", "reason": "valid",
        "status": 200, "correlation_id": "req-123", "latency_us": 42,
        "token_hash": token_hash(token), "user_id": "user-1", "tenant_id": "tenant-1",
        "client_id": "client-1", "jti": "jti-allowed", "sid_hash": token_hash("sid-1"),
    }
    assert token not in audit.text


async def test_a_denied_request_names_the_reason_and_never_the_token(
        service: VerifierService, client: httpx.AsyncClient, minter: Minter,
        audit: pytest.LogCaptureFixture) -> None:
    token = minter.mint()
    revoke_session(service)
    response = await client.get("/orders/o-1", headers=bearer(token))
    assert response.status_code == 401
    [event] = events(audit)
    assert event["event"] == ACCESS_DENIED
    assert (event["decision"], event["reason"], event["status"]) == (
        "denied", "session_revoked", 401)
    assert event["token_hash"] == token_hash(token)
    assert token not in audit.text
    assert token.split(".")[2] not in audit.text  # not even the signature


async def test_scope_denials_carry_the_subject(client: httpx.AsyncClient, minter: Minter,
                                               audit: pytest.LogCaptureFixture) -> None:
    token = minter.mint(scope="profile")
    assert (await client.get("/orders/o-1", headers=bearer(token))).status_code == 403
    [event] = events(audit)
    assert (event["reason"], event["status"], event["user_id"]) == (
        "insufficient_scope", 403, "user-1")


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "missing_token"),
    ({"authorization": "Bearer not a token"}, "malformed"),
    ({"authorization": "Bearer not-a-jwt"}, "malformed"),
])
async def test_header_problems_are_denials_too(client: httpx.AsyncClient,
                                               audit: pytest.LogCaptureFixture,
                                               headers: dict[str, str], reason: str) -> None:
    assert (await client.get("/orders/o-1", headers=headers)).status_code == 401
    [event] = events(audit)
    assert (event["event"], event["reason"]) == (ACCESS_DENIED, reason)
    assert "user_id" not in event
    assert "not-a-jwt" not in audit.text


async def test_public_paths_make_no_decision(client: httpx.AsyncClient,
                                             audit: pytest.LogCaptureFixture) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert events(audit) == []


@pytest.mark.parametrize("request_id", ["has space", "x" * 129, "line\nbreak"])
async def test_unsafe_correlation_ids_are_left_out(client: httpx.AsyncClient, minter: Minter,
                                                   audit: pytest.LogCaptureFixture,
                                                   request_id: str) -> None:
    headers = {**bearer(minter.mint()), "x-request-id": request_id.replace("\n", "\\n")}
    await client.get("/orders/o-1", headers=headers)
    [event] = events(audit)
    assert "correlation_id" not in event


async def test_the_plain_api_records_its_decisions(service: VerifierService, minter: Minter,
                                                   audit: pytest.LogCaptureFixture) -> None:
    await service.check(minter.mint(), route="queue:orders", correlation_id="msg-7")
    with pytest.raises(Denied):
        await service.check(minter.mint(), scopes=["orders:admin"])
    allowed, denied = events(audit)
    assert (allowed["route"], allowed["correlation_id"]) == ("queue:orders", "msg-7")
    assert denied["reason"] == "insufficient_scope"
    assert "route" not in denied


async def test_nothing_is_serialised_when_the_audit_logger_is_off(
        client: httpx.AsyncClient, minter: Minter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tessera.audit")
    assert (await client.get("/orders/o-1", headers=bearer(minter.mint()))).status_code == 200
    assert events(caplog) == []
