"""``tessera.observability.tracing`` against the OpenTelemetry SDK's in-memory exporter,
and with no SDK at all (tracing off: nothing recorded, the trace still passed on)."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from tessera.core.secrets import token_hash
from tessera.observability import tracing
from tessera.settings import Settings, TracingSettings

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
_OTEL_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
             "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "TESSERA_TRACING__ENABLED",
             "TESSERA_TRACING__EXPORTER")

def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


_HAS_OTLP = _installed("opentelemetry.exporter.otlp.proto.http.trace_exporter")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tessera's spans go to an SDK provider with an in-memory exporter (not global)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    yield exporter
    tracing.use_tracer_provider(None)
    provider.shutdown()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracing, "_configured", None)
    return monkeypatch


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- values and propagation -----------------------------------------------------------------

def test_exported_names() -> None:
    assert sorted(tracing.__all__) == [
        "CORRELATION_ID", "SID_HASH", "TOKEN_SPANS", "TracingMiddleware", "annotate_audit_event",
        "configure_tracing", "current_correlation_id", "extract_context", "hash_sid",
        "inject_trace_context", "record_decision", "server_span", "span", "token_observer",
        "traced", "use_tracer_provider"]
    assert all(hasattr(tracing, name) for name in tracing.__all__)


def test_the_sid_hash_is_the_token_hash_of_the_sid() -> None:
    assert tracing.hash_sid("sid-1") == token_hash("sid-1") != "sid-1"


def test_span_is_a_child_with_tessera_attributes(spans: InMemorySpanExporter) -> None:
    with tracing.span("outer") as outer, tracing.span("step", grant_type="x", none=None):
        pass
    step = named(spans, "step")
    assert step.parent is not None
    assert step.parent.span_id == outer.get_span_context().span_id
    assert attributes(step) == {"tessera.grant_type": "x"}


def test_server_span_continues_the_incoming_trace(spans: InMemorySpanExporter) -> None:
    with tracing.server_span("incoming", {"traceparent": [TRACEPARENT]}):
        assert tracing.current_correlation_id() == TRACE
        with tracing.span("step"):
            pass
    assert tracing.current_correlation_id() is None
    server, step = named(spans, "incoming"), named(spans, "step")
    assert server.kind is SpanKind.SERVER
    assert server.context is not None and server.parent is not None
    assert server.context.trace_id == int(TRACE, 16)
    assert server.parent.span_id == int(PARENT, 16) and server.parent.is_remote
    assert step.parent is not None and step.parent.span_id == server.context.span_id
    assert attributes(server)[tracing.CORRELATION_ID] == TRACE
    assert attributes(step)[tracing.CORRELATION_ID] == TRACE


def test_a_request_id_is_the_correlation_id(spans: InMemorySpanExporter) -> None:
    with tracing.server_span("incoming", {"traceparent": [TRACEPARENT]},
                             correlation_id="req-7"):
        assert tracing.current_correlation_id() == "req-7"
    assert attributes(named(spans, "incoming"))[tracing.CORRELATION_ID] == "req-7"


@pytest.mark.parametrize("values", [
    [TRACEPARENT, TRACEPARENT],  # W3C: more than one traceparent is invalid
    [f"00-{'0' * 32}-{PARENT}-01"],
    [f"ff-{TRACE}-{PARENT}-01"],
    ["garbage"],
])
def test_an_invalid_traceparent_starts_a_new_trace(
        spans: InMemorySpanExporter, values: list[str]) -> None:
    with tracing.server_span("incoming", {"traceparent": values}):
        correlation = tracing.current_correlation_id()
    server = named(spans, "incoming")
    assert server.parent is None and server.context is not None
    assert server.context.trace_id != int(TRACE, 16)
    assert correlation == trace.format_trace_id(server.context.trace_id)


def test_a_single_header_value_may_be_a_string(spans: InMemorySpanExporter) -> None:
    with tracing.server_span("incoming", {"traceparent": TRACEPARENT}):
        assert tracing.current_correlation_id() == TRACE


def test_inject_adds_the_current_span(spans: InMemorySpanExporter) -> None:
    assert tracing.inject_trace_context({"accept": "application/json"}) == {
        "accept": "application/json"}
    with tracing.server_span("incoming", {"traceparent": [TRACEPARENT]}) as current:
        headers = tracing.inject_trace_context({"accept": "application/json"})
    span_id = trace.format_span_id(current.get_span_context().span_id)
    assert headers == {"accept": "application/json",
                       "traceparent": f"00-{TRACE}-{span_id}-01"}


# -- endpoints, the token observer, audit events --------------------------------------------

@dataclass
class Answer:
    status: int
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


async def test_traced_endpoint_named_by_the_token_observer(
        spans: InMemorySpanExporter) -> None:
    seen: list[tuple[str, str | None]] = []
    observer = tracing.token_observer(lambda grant, error, _: seen.append((grant, error)))

    async def refresh(_: str) -> Answer:
        observer("refresh_token", None, 0.01)
        return Answer(200, {"access_token": "secret"})

    async def refused(_: str) -> Answer:
        observer("client_credentials", "invalid_client", 0.01)
        return Answer(401, {"error": "invalid_client"})

    assert (await tracing.traced("token.issue", refresh)("request")).status == 200
    assert (await tracing.traced("token.issue", refused)("request")).status == 401
    assert seen == [("refresh_token", None), ("client_credentials", "invalid_client")]
    ok, error = named(spans, "token.refresh"), named(spans, "token.issue")
    assert attributes(ok) == {"tessera.grant_type": "refresh_token", "tessera.outcome": "ok"}
    assert attributes(error) == {"tessera.grant_type": "client_credentials",
                                 "tessera.outcome": "invalid_client"}


async def test_the_token_observer_outside_a_traced_endpoint_only_calls_on(
        spans: InMemorySpanExporter) -> None:
    seen: list[str] = []
    with tracing.span("other"):
        tracing.token_observer(lambda grant, *_: seen.append(grant))("refresh_token", None, 0)
    assert seen == ["refresh_token"]
    assert [s.name for s in spans.get_finished_spans()] == ["other"]
    assert attributes(named(spans, "other")) == {}


async def test_a_server_error_answer_marks_the_span(spans: InMemorySpanExporter) -> None:
    async def broken(_: str) -> Answer:
        return Answer(503, {"error": "temporarily_unavailable"})

    await tracing.traced("token.revoke", broken)("request")
    revoke = named(spans, "token.revoke")
    assert attributes(revoke)["tessera.outcome"] == "temporarily_unavailable"
    assert revoke.status.status_code is StatusCode.ERROR


def test_audit_events_get_the_correlation_id_and_mark_the_span(
        spans: InMemorySpanExporter) -> None:
    outside: dict[str, Any] = {"sid": "sid-1"}
    tracing.annotate_audit_event("token.issued", outside)
    assert outside == {"sid": "sid-1"}
    with tracing.server_span("incoming", {}, correlation_id="req-1"):
        fields: dict[str, Any] = {"sid": "sid-1", "client_id": "c1"}
        tracing.annotate_audit_event("token.refreshed", fields)
        kept: dict[str, Any] = {"correlation_id": "own"}
        tracing.annotate_audit_event("session.revoked", kept)
    assert fields == {"sid": "sid-1", "client_id": "c1", "correlation_id": "req-1"}
    assert kept == {"correlation_id": "own"}
    server = named(spans, "incoming")
    assert attributes(server)[tracing.SID_HASH] == token_hash("sid-1")
    assert [e.name for e in server.events] == ["token.refreshed", "session.revoked"]
    assert "sid-1" not in repr(attributes(server))


# -- access decisions -----------------------------------------------------------------------

class Token(NamedTuple):
    sid: str | None
    client_id: str


class Decision(NamedTuple):
    allowed: bool
    reason: str
    status: int
    latency: float
    route: str | None = None
    correlation_id: str | None = None
    token: Token | None = None


def test_a_decision_span_carries_the_sid_hash(spans: InMemorySpanExporter) -> None:
    with tracing.span("request") as request:
        tracing.record_decision(Decision(True, "valid", 200, 0.25, "/orders/{id}", "req-9",
                                         Token("sid-1", "web")), service="orders")
    decision = named(spans, "access.decision")
    assert decision.parent is not None
    assert decision.parent.span_id == request.get_span_context().span_id
    assert attributes(decision) == {
        "tessera.decision": "allowed", "tessera.reason": "valid", "tessera.status": 200,
        "tessera.route": "/orders/{id}", "tessera.service": "orders",
        "tessera.client_id": "web", tracing.SID_HASH: token_hash("sid-1"),
        tracing.CORRELATION_ID: "req-9"}
    assert decision.start_time is not None and decision.end_time is not None
    assert abs((decision.end_time - decision.start_time) / 1e9 - 0.25) < 0.01


def test_a_denial_without_a_token(spans: InMemorySpanExporter) -> None:
    with tracing.server_span("incoming", {}, correlation_id="req-2"):
        tracing.record_decision(Decision(False, "keys_unavailable", 503, 0.001),
                                service="orders")
    decision = named(spans, "access.decision")
    assert attributes(decision) == {
        "tessera.decision": "denied", "tessera.reason": "keys_unavailable",
        "tessera.status": 503, "tessera.service": "orders", tracing.CORRELATION_ID: "req-2"}
    assert decision.status.status_code is StatusCode.ERROR


# -- ASGI middleware ------------------------------------------------------------------------

def _app() -> Starlette:
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"correlation_id": tracing.current_correlation_id(),
                             "traceparent": tracing.inject_trace_context().get("traceparent")})

    app = Starlette(routes=[Route("/items/{item_id}", item),
                            Mount("/sub", routes=[Route("/x", item)])])
    return tracing.TracingMiddleware(app)  # type: ignore[return-value]


async def _get(path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()),
                                 base_url="http://test") as http:
        return await http.get(path, headers=headers)


async def test_middleware_server_span(spans: InMemorySpanExporter) -> None:
    response = await _get("/items/42?code=secret", traceparent=TRACEPARENT,
                          **{"x-request-id": "req-5"})
    assert response.json()["correlation_id"] == "req-5"
    server = named(spans, "GET /items/{item_id}")
    assert server.context is not None and server.context.trace_id == int(TRACE, 16)
    span_id = trace.format_span_id(server.context.span_id)
    assert response.json()["traceparent"] == f"00-{TRACE}-{span_id}-01"
    assert attributes(server) == {
        "http.request.method": "GET", "url.path": "/items/42", "http.route": "/items/{item_id}",
        "http.response.status_code": 200, tracing.CORRELATION_ID: "req-5"}


async def test_middleware_names_mounted_routes_and_misses(spans: InMemorySpanExporter) -> None:
    assert (await _get("/sub/x")).status_code == 200
    assert (await _get("/nowhere", **{"x-request-id": "bad id"})).status_code == 404
    mounted, missed = named(spans, "GET /sub/x"), named(spans, "GET")
    assert attributes(mounted)["http.route"] == "/sub/x"
    assert attributes(missed)["http.response.status_code"] == 404
    assert missed.context is not None
    # an unacceptable X-Request-Id is ignored: the trace id is the correlation id
    assert attributes(missed)[tracing.CORRELATION_ID] == trace.format_trace_id(
        missed.context.trace_id)


# -- tracing off ----------------------------------------------------------------------------

async def test_tracing_off_records_nothing_and_passes_the_trace_on() -> None:
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider), \
        "no SDK may be installed globally by the tests"
    response = await _get("/items/1", traceparent=TRACEPARENT)
    # no span of our own: the caller's trace and parent go on unchanged
    assert response.json() == {"correlation_id": TRACE, "traceparent": TRACEPARENT}
    with tracing.server_span("incoming", {}) as server, tracing.span("step") as step:
        assert not server.is_recording() and not step.is_recording()
        assert tracing.current_correlation_id() is None
        tracing.record_decision(Decision(True, "valid", 200, 0.1, token=Token("s", "c")),
                                service="orders")
        fields: dict[str, Any] = {"sid": "s"}
        tracing.annotate_audit_event("token.issued", fields)
        assert fields == {"sid": "s"}
    assert tracing.inject_trace_context() == {}


async def test_tracing_off_without_a_traceparent_keeps_the_request_id() -> None:
    """The fast path (no provider, no traceparent): no span at all, the correlation id
    still set from ``X-Request-Id`` for the request, and reset after it."""
    response = await _get("/items/1", **{"x-request-id": "req-9"})
    assert response.json() == {"correlation_id": "req-9", "traceparent": None}
    assert (await _get("/items/1", **{"x-request-id": "bad id"})).json() == {
        "correlation_id": None, "traceparent": None}
    assert tracing.current_correlation_id() is None
    answered = await tracing.traced("step", _echo_correlation)("x")
    assert answered.json == {"seen": None}


class _Answered:
    def __init__(self, status: int, json: Any) -> None:
        self.status, self.json = status, json


async def _echo_correlation(_request: str) -> _Answered:
    return _Answered(200, {"seen": tracing.current_correlation_id()})


# -- configuration --------------------------------------------------------------------------

def test_tracing_is_off_by_default(clean_env: pytest.MonkeyPatch) -> None:
    assert TracingSettings().enabled is False
    assert Settings().tracing == TracingSettings()
    assert tracing.configure_tracing("tessera-test") is None


def test_tracing_settings_from_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TESSERA_TRACING__ENABLED", "true")
    clean_env.setenv("TESSERA_TRACING__EXPORTER", "console")
    assert TracingSettings() == TracingSettings(enabled=True, exporter="console")
    assert Settings().tracing == TracingSettings(enabled=True, exporter="console")


def test_otel_sdk_disabled_wins(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.configure_tracing("tessera-test", exporter="console") is None


def test_configure_installs_the_sdk_once(clean_env: pytest.MonkeyPatch) -> None:
    installed: list[trace.TracerProvider] = []
    clean_env.setattr(trace, "set_tracer_provider", installed.append)
    clean_env.setenv("OTEL_SERVICE_NAME", "from-env")
    provider = tracing.configure_tracing(
        "tessera-test", settings=TracingSettings(enabled=True, exporter="console"))
    try:
        assert isinstance(provider, TracerProvider) and installed == [provider]
        assert provider.resource.attributes["service.name"] == "from-env"
        assert tracing.configure_tracing("again", exporter="console") is provider
        assert installed == [provider]
    finally:
        assert provider is not None
        provider.shutdown()


def test_the_service_name(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(trace, "set_tracer_provider", lambda _: None)
    provider = tracing.configure_tracing("tessera-test", exporter="console")
    assert provider is not None
    provider.shutdown()
    assert provider.resource.attributes["service.name"] == "tessera-test"


def test_an_unknown_exporter(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown span exporter"):
        tracing.configure_tracing("tessera-test", exporter="zipkin")


@pytest.mark.skipif(_HAS_OTLP, reason="the OTLP exporter is installed")
def test_otlp_without_the_extra(clean_env: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(RuntimeError, match=r"tessera\[tracing\]"):
        tracing.configure_tracing("tessera-test", exporter="otlp")
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    with caplog.at_level(logging.WARNING, "tessera.tracing"):
        assert tracing.configure_tracing("tessera-test") is None
    assert "tracing stays off" in caplog.text


@pytest.mark.skipif(not _HAS_OTLP, reason="needs tessera[tracing]")
def test_an_otlp_endpoint_turns_tracing_on(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(trace, "set_tracer_provider", lambda _: None)
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    provider = tracing.configure_tracing("tessera-test")
    assert isinstance(provider, TracerProvider)
    provider.shutdown()


def test_a_provider_installed_by_the_application_is_kept(
        clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(trace, "get_tracer_provider", TracerProvider)
    assert tracing.configure_tracing("tessera-test", exporter="console") is None
