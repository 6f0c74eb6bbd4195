"""OpenTelemetry tracing end to end: token spans continue the caller's W3C trace, SDK
decisions carry the sid hash (never a token or sid), the gateway passes its trace to the
identity service when it exchanges tokens; with no SDK everything works and nothing is
recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from tessera.core.secrets import token_hash
from tessera.gateway import GatewaySettings, create_gateway, parse_policy
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.observability import tracing
from tessera.verifier import Denied
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings
from tests.conftest import ISSUER
from tests.e2e.helpers import audit_rows, claims_of, logged_in, refresh, revoke
from tests.support import TesseraDriver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
API = "https://api.example"
ORDERS = "https://orders.internal"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.use_tracer_provider(None)
    provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(exporter, name)
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    assert child.parent is not None and parent.context is not None
    return (child.parent.span_id == parent.context.span_id
            and child.context is not None and child.context.trace_id == parent.context.trace_id)


def recorded_text(exporter: InMemorySpanExporter) -> str:
    """Every name, attribute and event of every span, as one string to search."""
    return repr([(s.name, attrs(s), [(e.name, dict(e.attributes or {})) for e in s.events])
                 for s in exporter.get_finished_spans()])


def verifier(identity: Identity, **settings: Any) -> VerifierService:
    values: dict[str, Any] = {"issuer": ISSUER, "audience": API, "source": "none",
                              "service_name": "orders-api", **settings}
    service = VerifierService(VerifierSettings(**values), clock=identity.clock,
                              transport=httpx.ASGITransport(app=build_app(identity)),
                              registry=CollectorRegistry())
    service.state.confirm(identity.clock.now())  # fed by hand: loaded and current
    return service


# -- token endpoint -------------------------------------------------------------------------

async def test_a_token_request_continues_the_callers_trace(
        tessera: TesseraDriver, identity: Identity, spans: InMemorySpanExporter) -> None:
    app = await tessera.client()
    response = await tessera.http.post("/token", data={"grant_type": "client_credentials"},
                                       auth=app.auth,  # type: ignore[arg-type]
                                       headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200, response.text
    server, issue = one(spans, "POST /token"), one(spans, "token.issue")
    assert server.kind is SpanKind.SERVER
    assert server.context is not None and server.context.trace_id == int(TRACE, 16)
    assert server.parent is not None and server.parent.span_id == int(PARENT, 16)
    assert is_child(issue, server)
    assert attrs(issue) == {"tessera.grant_type": "client_credentials",
                            "tessera.outcome": "ok", tracing.CORRELATION_ID: TRACE}
    assert attrs(server)["http.response.status_code"] == 200
    assert [e.name for e in issue.events] == ["token.issued"]
    # the audit event carries the trace id as its correlation id
    [issued] = await audit_rows(identity, "token.issued")
    assert issued.fields["correlation_id"] == TRACE


async def test_refresh_spans_carry_the_sid_hash_and_never_a_token(
        tessera: TesseraDriver, identity: Identity, spans: InMemorySpanExporter) -> None:
    app, tokens = await logged_in(tessera)
    sid = claims_of(tokens["access_token"])["sid"]
    spans.clear()
    response = await tessera.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=app.auth, headers={"x-request-id": "req-42"})  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    renewed = response.json()
    span = one(spans, "token.refresh")
    assert attrs(span) == {"tessera.grant_type": "refresh_token", "tessera.outcome": "ok",
                           tracing.SID_HASH: token_hash(sid),
                           tracing.CORRELATION_ID: "req-42"}
    [refreshed] = await audit_rows(identity, "token.refreshed")
    assert refreshed.fields["correlation_id"] == "req-42"
    refused = await refresh(tessera, app, "not-a-refresh-token")
    assert refused.status_code == 400
    assert attrs(named(spans, "token.refresh")[1])["tessera.outcome"] == "invalid_grant"
    text = recorded_text(spans)
    for secret in (sid, tokens["refresh_token"], tokens["access_token"],
                   renewed["refresh_token"], renewed["access_token"], "not-a-refresh-token"):
        assert secret not in text


async def test_revocation_span(tessera: TesseraDriver, spans: InMemorySpanExporter) -> None:
    app, tokens = await logged_in(tessera)
    sid = claims_of(tokens["access_token"])["sid"]
    response = await revoke(tessera, app, tokens["refresh_token"])
    assert response.status_code == 200
    span = one(spans, "token.revoke")
    assert attrs(span)["tessera.outcome"] == "ok"
    assert attrs(span)[tracing.SID_HASH] == token_hash(sid)
    assert one(spans, "POST /revoke") is not None
    assert tokens["refresh_token"] not in recorded_text(spans)


# -- SDK decisions --------------------------------------------------------------------------

async def test_sdk_decisions_carry_the_sid_hash_and_never_the_token(
        tessera: TesseraDriver, identity: Identity, spans: InMemorySpanExporter) -> None:
    _, tokens = await logged_in(tessera)
    access = tokens["access_token"]
    sid = claims_of(access)["sid"]
    service = verifier(identity)
    try:
        spans.clear()
        with tracing.server_span("GET /orders", {"traceparent": [TRACEPARENT]}):
            await service.check(access, route="/orders", correlation_id="req-1")
            with pytest.raises(Denied):
                await service.check(access, scopes=["orders:admin"], route="/orders")
            with pytest.raises(Denied):
                await service.check("not.a.token", route="/orders")
    finally:
        await service.aclose()
    allowed, scoped, garbage = named(spans, "access.decision")
    server = one(spans, "GET /orders")
    assert all(is_child(d, server) for d in (allowed, scoped, garbage))
    assert attrs(allowed) == {
        "tessera.decision": "allowed", "tessera.reason": "valid", "tessera.status": 200,
        "tessera.route": "/orders", "tessera.service": "orders-api",
        "tessera.client_id": claims_of(access)["client_id"],
        tracing.SID_HASH: token_hash(sid), tracing.CORRELATION_ID: "req-1"}
    assert attrs(scoped)["tessera.decision"] == "denied"
    assert attrs(scoped)[tracing.SID_HASH] == token_hash(sid)
    assert attrs(scoped)[tracing.CORRELATION_ID] == TRACE  # the request's, none given
    assert attrs(garbage)["tessera.decision"] == "denied"
    assert tracing.SID_HASH not in attrs(garbage)
    text = recorded_text(spans)
    assert access not in text and sid not in text and "not.a.token" not in text


# -- across hops: gateway → identity service ------------------------------------------------

@pytest.fixture
async def gateway_http(tessera: TesseraDriver, identity: Identity
                       ) -> AsyncIterator[httpx.AsyncClient]:
    client = await tessera.client(grants=(EXCHANGE,), scope="api:read api:write",
                                  audiences=(ORDERS,), subject_audiences=(API,))
    assert client.secret is not None
    policy = parse_policy({"routes": [
        {"match": {"host": "api.example", "path": "/orders/**"}, "audience": API,
         "exchange_to": ORDERS, "exchange_scope": "api:read"}]})
    settings = VerifierSettings(issuer=ISSUER, audience=API, source="none",
                                client_id=client.client_id, client_secret=client.secret,
                                startup_wait=0)
    app = create_gateway(policy, settings, GatewaySettings(), clock=identity.clock,
                         transport=httpx.ASGITransport(app=build_app(identity)),
                         registry=CollectorRegistry())
    app.state.tessera_gateway.service.state.confirm(identity.clock.now())  # fed by hand
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as http:
        yield http


async def test_the_gateway_passes_its_trace_to_the_identity_service(
        tessera: TesseraDriver, spans: InMemorySpanExporter,
        gateway_http: httpx.AsyncClient) -> None:
    _, tokens = await logged_in(tessera, scope="openid api:read api:write")
    access = tokens["access_token"]
    sid = claims_of(access)["sid"]
    spans.clear()
    response = await gateway_http.get("/forward-auth", headers={
        "x-original-uri": "/orders/7", "x-original-method": "GET", "host": "api.example",
        "authorization": f"Bearer {access}", "traceparent": TRACEPARENT})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == TRACE
    exchanged = response.headers["x-tessera-token"]
    forward = one(spans, "gateway.forward_auth")
    token_server, exchange = one(spans, "POST /token"), one(spans, "token.exchange")
    decision = one(spans, "access.decision")
    assert forward.kind is SpanKind.SERVER
    assert forward.parent is not None and forward.parent.span_id == int(PARENT, 16)
    # one trace over both hops: the exchange call carried the gateway's traceparent
    assert is_child(token_server, forward) and is_child(exchange, token_server)
    assert is_child(decision, forward)
    assert attrs(exchange)["tessera.grant_type"] == EXCHANGE
    assert attrs(exchange)[tracing.SID_HASH] == token_hash(sid)
    assert attrs(decision)[tracing.SID_HASH] == token_hash(sid)
    for span in (forward, token_server, exchange, decision):
        assert attrs(span)[tracing.CORRELATION_ID] == TRACE
    text = recorded_text(spans)
    assert access not in text and exchanged not in text and sid not in text


# -- tracing off ----------------------------------------------------------------------------

async def test_with_tracing_off_everything_works_and_nothing_is_recorded(
        tessera: TesseraDriver, identity: Identity, gateway_http: httpx.AsyncClient) -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    app, tokens = await logged_in(tessera, scope="openid api:read api:write")
    refreshed = await tessera.http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=app.auth, headers={"traceparent": TRACEPARENT})  # type: ignore[arg-type]
    assert refreshed.status_code == 200
    # no span of our own, but the caller's trace id still correlates the audit event
    [event] = await audit_rows(identity, "token.refreshed")
    assert event.fields["correlation_id"] == TRACE
    access = refreshed.json()["access_token"]
    service = verifier(identity)
    try:
        assert (await service.check(access)).sid == claims_of(access)["sid"]
    finally:
        await service.aclose()
    response = await gateway_http.get("/forward-auth", headers={
        "x-original-uri": "/orders/7", "x-original-method": "GET", "host": "api.example",
        "authorization": f"Bearer {access}"})
    assert response.status_code == 200 and response.headers["x-tessera-token"]
    assert (await revoke(tessera, app, refreshed.json()["refresh_token"])).status_code == 200
    with tracing.span("probe") as span:  # no SDK: every span is the API's no-op span
        assert not span.is_recording()
