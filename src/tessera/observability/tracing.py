"""OpenTelemetry tracing: spans for protocol steps and access decisions, W3C Trace Context
propagation and the request's correlation id (DESIGN §7; docs/tracing.md).

Everything here uses only ``opentelemetry-api``. Until an SDK is installed (by
``configure_tracing`` or by the host application) every span is the API's non-recording
span: no ids are made, nothing is exported, and attribute values are not even computed
(each helper checks ``is_recording`` first). The SDK and the OTLP/HTTP exporter come with
``tessera[tracing]``. Incoming ``traceparent`` headers are passed on either way.

=========================  ==========================  ====================================
span                       made by                     attributes (``tessera.*`` unless
                                                       dotted)
=========================  ==========================  ====================================
``METHOD /route`` (server) ``TracingMiddleware``       http.request.method, url.path,
                                                       http.route, http.response.status_code,
                                                       correlation_id
``token.issue``,           ``traced`` around           grant_type (``token_observer``),
``token.refresh``,         ``TokenEndpoint.handle``    outcome (``ok`` or the OAuth error),
``token.exchange``         (named by grant type)       sid_hash, correlation_id
``token.revoke``           ``traced`` (revocation)     outcome, sid_hash, correlation_id
``access.decision``        ``record_decision``         decision, reason, status, route,
                           (``VerifierService``)       service, client_id, sid_hash,
                                                       correlation_id
``gateway.forward_auth``   ``server_span`` (gateway)   correlation_id
(server)
=========================  ==========================  ====================================

Never a token, a ``sid`` or a subject: ``sid_hash`` is ``token_hash(sid)`` (SHA-256,
base64url), the decision log's ``sid_hash`` and the gateway's ``X-Tessera-Sid-Hash``.
Audit events made while a span is current (``annotate_audit_event``, called by
``AuditLog.make``) become span events of it (name only) and give it ``sid_hash``; an event
without a ``correlation_id`` gets the request's.

Correlation id of a request: its one valid ``X-Request-Id`` (the verifier's and the
gateway's rule), else the trace id of its server span (the incoming ``traceparent``'s, or a
new one when the SDK is on), else none.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import time
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from tessera import __version__
from tessera.core.secrets import token_hash
from tessera.observability.tracing_settings import TracingSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["CORRELATION_ID", "SID_HASH", "TOKEN_SPANS", "TracingMiddleware",
           "annotate_audit_event", "configure_tracing", "current_correlation_id",
           "extract_context", "hash_sid", "inject_trace_context", "record_decision",
           "server_span", "span", "token_observer", "traced", "use_tracer_provider"]

CORRELATION_ID: Final = "tessera.correlation_id"
SID_HASH: Final = "tessera.sid_hash"
TOKEN_SPANS: Final = {"refresh_token": "token.refresh",
                      "urn:ietf:params:oauth:grant-type:token-exchange": "token.exchange"}
"""Token endpoint span name by grant type; every other grant is ``token.issue``."""

_log = logging.getLogger("tessera.tracing")
_SCOPE: Final = "tessera"
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:/+=\-]{1,128}")
_HEADERS: Final = frozenset({b"traceparent", b"tracestate", b"x-request-id"})
_OTLP_ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_PROPAGATOR: Final = TraceContextTextMapPropagator()

_tracer: trace.Tracer = trace.get_tracer(_SCOPE, __version__)
_own_provider = False
"""``use_tracer_provider`` gave ``_tracer`` a provider of its own."""
_off_until = 0.0
"""Until then (``time.monotonic``), no tracer provider is installed (``_tracing_off``)."""
_configured: SdkTracerProvider | None = None
_correlation: ContextVar[str | None] = ContextVar("tessera_correlation_id", default=None)
_endpoint_span: ContextVar[Span | None] = ContextVar("tessera_endpoint_span", default=None)

Headers = Mapping[str, Sequence[str]]
"""Lower-case header name → values (the gateway's ``read_headers`` shape); a plain
string value is taken as one value."""
Attributes = Mapping[str, AttributeValue | None]
TokenObserver = Callable[[str, str | None, float], None]


# -- setup --------------------------------------------------------------------------------

def configure_tracing(service_name: str, *, exporter: str | None = None,
                      settings: TracingSettings | None = None) -> SdkTracerProvider | None:
    """Install the OpenTelemetry SDK for this process if tracing is on (once per process:
    later calls return the first result). Call it in every worker process.

    On when ``exporter`` is given, ``settings.enabled`` (``TESSERA_TRACING__ENABLED=true``;
    ``settings`` default: read from the environment) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set; never with ``OTEL_SDK_DISABLED=true``,
    nor when the application already installed a tracer provider (it is used as it is).
    ``exporter``: ``otlp`` (OTLP/HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*``
    variables) or ``console`` (stderr); default ``settings.exporter``. ``OTEL_SERVICE_NAME``
    overrides ``service_name``; ``OTEL_TRACES_SAMPLER`` picks the sampler (default: parent
    based, always on). Returns the SDK provider, or None when tracing stays off.

    Explicitly on without ``tessera[tracing]`` installed: ``RuntimeError``. Turned on only
    by an ``OTEL_EXPORTER_OTLP_*`` variable: a warning, and tracing stays off.
    """
    global _configured, _off_until
    if _configured is not None:
        return _configured
    settings = settings if settings is not None else TracingSettings()
    explicit = exporter is not None or settings.enabled
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true" or not (
            explicit or any(os.environ.get(name) for name in _OTLP_ENDPOINTS)):
        return None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        _log.info("a tracer provider is already installed; tessera's spans use it")
        return None
    try:
        provider = _sdk_provider(service_name, exporter or settings.exporter)
    except ImportError as exc:
        if explicit:
            raise RuntimeError("tracing needs the OpenTelemetry SDK and exporter: "
                               "pip install 'tessera[tracing]'") from exc
        _log.warning("OTEL_EXPORTER_OTLP_* is set but tessera[tracing] is not installed: "
                     "tracing stays off (%s)", exc)
        return None
    trace.set_tracer_provider(provider)
    _configured = provider
    _off_until = 0.0
    return provider


def _sdk_provider(service_name: str, exporter: str) -> SdkTracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter(out=sys.stderr)
    elif exporter == "otlp":
        otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        span_exporter = otlp.OTLPSpanExporter()
    else:
        raise ValueError(f"unknown span exporter {exporter!r} (otlp or console)")
    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return provider


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Make tessera's spans use ``provider`` instead of the global one (None: the global
    one again). For tests and for applications that keep several providers."""
    global _tracer, _own_provider, _off_until
    _tracer = (provider.get_tracer(_SCOPE, __version__) if provider is not None
               else trace.get_tracer(_SCOPE, __version__))
    _own_provider = provider is not None
    _off_until = 0.0


def _tracing_off() -> bool:
    """No tracer provider anywhere: every span would be a no-op that records nothing. The
    hot paths then skip making them (~5% of a token request's CPU), doing only what a
    no-op span leaves behind: the correlation id, and a ``traceparent`` passed on (a
    request carrying one still takes the full path). Looking for a global provider
    costs an environment lookup, so "none" is believed for up to a second (a provider
    an application installs itself is used within a second; ``configure_tracing`` and
    ``use_tracer_provider`` take effect at once)."""
    global _off_until
    if _own_provider:
        return False
    now = time.monotonic()
    if now < _off_until:
        return True
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        _off_until = now + 1.0
        return True
    return False


# -- values -------------------------------------------------------------------------------

def hash_sid(sid: str) -> str:
    """What spans carry instead of a ``sid``: SHA-256, base64url (``token_hash``)."""
    return token_hash(sid)


def current_correlation_id() -> str | None:
    """The correlation id of the request being served (``server_span``), if any."""
    return _correlation.get()


def _set(target: Span, attributes: Attributes, *, correlation_id: str | None) -> None:
    for name, value in attributes.items():
        if value is not None:
            target.set_attribute(name if "." in name else f"tessera.{name}", value)
    if correlation_id is not None:
        target.set_attribute(CORRELATION_ID, correlation_id)


# -- propagation --------------------------------------------------------------------------

class _HeaderGetter(Getter[Headers]):
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = carrier.get(key)
        if isinstance(values, str):
            values = [values]
        if not values or (key == "traceparent" and len(values) != 1):
            return None  # two traceparents are ambiguous: ignored (the gateway's rule too)
        return list(values)

    def keys(self, carrier: Headers) -> list[str]:
        return list(carrier)


_GETTER: Final = _HeaderGetter()


def extract_context(headers: Headers) -> Context:
    """The remote parent named by ``traceparent``/``tracestate`` (W3C Trace Context), or
    an empty context (a new trace) when there is none or it is invalid."""
    return _PROPAGATOR.extract(headers, getter=_GETTER)


def inject_trace_context(headers: MutableMapping[str, str] | None = None
                         ) -> MutableMapping[str, str]:
    """``headers`` (a new dict by default) with the ``traceparent``/``tracestate`` of the
    current span added, for an outgoing HTTP request; unchanged without a current span."""
    carrier: MutableMapping[str, str] = {} if headers is None else headers
    _PROPAGATOR.inject(carrier)
    return carrier


# -- spans --------------------------------------------------------------------------------

@contextlib.contextmanager
def span(name: str, **attributes: AttributeValue | None) -> Iterator[Span]:
    """A child span of the current one for a protocol step; keyword attributes are named
    ``tessera.<name>`` (None values are left out), plus the request's correlation id."""
    current = _tracer.start_span(name)
    if not current.is_recording():  # tracing off, or this trace is not sampled
        yield current
        return
    _set(current, attributes, correlation_id=_correlation.get())
    with trace.use_span(current, end_on_exit=True):
        yield current


@contextlib.contextmanager
def server_span(name: str, headers: Headers, *, correlation_id: str | None = None,
                attributes: Attributes | None = None) -> Iterator[Span]:
    """The server span of one incoming request, a child of its ``traceparent`` (made
    current, so ``inject_trace_context`` passes the trace on even with tracing off). Sets
    the request's correlation id for the block: ``correlation_id``, else the trace id."""
    current = _tracer.start_span(name, context=extract_context(headers), kind=SpanKind.SERVER)
    valid = current.get_span_context().is_valid  # off and no traceparent: nothing to pass on
    if correlation_id is None and valid:
        correlation_id = trace.format_trace_id(current.get_span_context().trace_id)
    reset = _correlation.set(correlation_id)
    try:
        if current.is_recording():
            _set(current, attributes or {}, correlation_id=correlation_id)
        if valid:
            with trace.use_span(current, end_on_exit=True):
                yield current
        else:
            yield current
    finally:
        _correlation.reset(reset)


class _Answer(Protocol):
    status: int
    json: Any


Request = TypeVar("Request")
Answer = TypeVar("Answer", bound=_Answer)


def traced(name: str, endpoint: Callable[[Request], Awaitable[Answer]]
           ) -> Callable[[Request], Awaitable[Answer]]:
    """``endpoint`` (a protocol endpoint: neutral request → response value) in a ``name``
    span with ``tessera.outcome``: ``ok`` below 400, else the OAuth ``error`` sent."""

    async def call(request: Request) -> Answer:
        if _tracing_off():
            return await endpoint(request)
        with span(name) as current:
            reset = _endpoint_span.set(current)
            try:
                answer = await endpoint(request)
            finally:
                _endpoint_span.reset(reset)
            if current.is_recording():
                current.set_attribute("tessera.outcome", _outcome(answer))
                if answer.status >= 500:
                    current.set_status(Status(StatusCode.ERROR))
            return answer

    return call


def _outcome(answer: _Answer) -> str:
    if answer.status < 400:
        return "ok"
    error = answer.json.get("error") if isinstance(answer.json, dict) else None
    return error if isinstance(error, str) else f"http_{answer.status}"


def token_observer(then: TokenObserver | None = None) -> TokenObserver:
    """A ``TokenEndpoint`` observer: calls ``then`` (metrics), then names the span of the
    ``traced`` token endpoint after the grant (``TOKEN_SPANS``) and records the grant type.
    Outside a ``traced`` endpoint it only calls ``then``."""

    def observe(grant_type: str, error: str | None, seconds: float) -> None:
        if then is not None:
            then(grant_type, error, seconds)
        current = _endpoint_span.get()
        if current is not None and current.is_recording():
            current.update_name(TOKEN_SPANS.get(grant_type, "token.issue"))
            current.set_attribute("tessera.grant_type", grant_type)

    return observe


def annotate_audit_event(event: str, fields: dict[str, Any]) -> None:
    """Called for every audit record as it is made (in the request's context): adds the
    request's ``correlation_id`` to ``fields`` when they have none, and records the event
    (its name) and ``sid_hash`` on the current span."""
    if "correlation_id" not in fields:
        correlation = _correlation.get()
        if correlation is not None:
            fields["correlation_id"] = correlation
    if _tracing_off():
        return
    current = trace.get_current_span()
    if current.is_recording():
        sid = fields.get("sid")
        if isinstance(sid, str):
            current.set_attribute(SID_HASH, hash_sid(sid))
        current.add_event(event)


class _Token(Protocol):
    @property
    def sid(self) -> str | None: ...
    @property
    def client_id(self) -> str: ...


class _Decision(Protocol):
    @property
    def allowed(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def latency(self) -> float: ...
    @property
    def route(self) -> str | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def token(self) -> _Token | None: ...


def record_decision(decision: _Decision, *, service: str) -> None:
    """An ``access.decision`` span for a decision just made (it started ``latency``
    seconds ago), a child of the current span: the SDK records decisions after the fact."""
    end = time.time_ns()
    current = _tracer.start_span("access.decision", start_time=end - int(decision.latency * 1e9))
    if current.is_recording():
        token = decision.token
        _set(current, {
            "decision": "allowed" if decision.allowed else "denied",
            "reason": decision.reason, "status": decision.status, "route": decision.route,
            "service": service, "client_id": token.client_id if token is not None else None,
            "sid_hash": hash_sid(token.sid) if token is not None and token.sid else None,
        }, correlation_id=decision.correlation_id or _correlation.get())
        if decision.status >= 500:
            current.set_status(Status(StatusCode.ERROR))
        current.end(end_time=end)


# -- ASGI ---------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _read_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in raw:
        name = name.lower()
        if name in _HEADERS:
            found.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return found


class TracingMiddleware:
    """Pure ASGI middleware: a server span per HTTP request (``server_span``), named
    ``METHOD /route`` once the router has matched (just ``METHOD`` otherwise), with the
    response status; the correlation id is current for the request (audit events and
    protocol spans pick it up). Query strings and headers are not recorded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _read_headers(scope.get("headers", ()))
        ids = headers.get("x-request-id", ())
        request_id = ids[0] if len(ids) == 1 and _REQUEST_ID.fullmatch(ids[0]) else None
        if "traceparent" not in headers and _tracing_off():
            reset = _correlation.set(request_id)
            try:
                await self.app(scope, receive, send)
            finally:
                _correlation.reset(reset)
            return
        method = str(scope.get("method", "GET"))
        root_path = str(scope.get("root_path", ""))
        with server_span(method, headers, correlation_id=request_id, attributes={
                "http.request.method": method, "url.path": scope.get("path")}) as current:
            if not current.is_recording():
                await self.app(scope, receive, send)
                return
            status: list[int] = []

            async def send_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status.append(int(message["status"]))
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            finally:
                _name_server_span(current, scope, method, root_path, status)


def _name_server_span(current: Span, scope: Scope, method: str, root_path: str,
                      status: list[int]) -> None:
    route = getattr(scope.get("route"), "path", None)
    if isinstance(route, str):
        mounted = str(scope.get("root_path", ""))[len(root_path):]  # under a Mount
        current.update_name(f"{method} {mounted}{route}")
        current.set_attribute("http.route", f"{mounted}{route}")
    if status:
        current.set_attribute("http.response.status_code", status[0])
        if status[0] >= 500:
            current.set_status(Status(StatusCode.ERROR))
