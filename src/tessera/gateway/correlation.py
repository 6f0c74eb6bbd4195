"""Correlation ids: accepted from the caller, derived from W3C Trace Context, or minted.

In order:

1. one ``X-Request-Id`` made of ``[A-Za-z0-9._:/+=-]``, at most 128 characters (the same
   rule the verifier SDK applies, so a service downstream accepts what the gateway
   returns); anything else — empty, longer, with spaces, quotes, control characters or
   non-ASCII, or sent twice — is ignored, never echoed;
2. the ``trace-id`` of one valid ``traceparent`` (W3C Trace Context §3.2: version not
   ``ff``, version ``00`` exactly 55 characters, ids lower-case hex and not all zeros);
3. 32 fresh random hex digits (the shape of a trace id).

The result is returned in ``X-Request-Id`` on every answer and recorded in the decision
event.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Final

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["accepted_request_id", "correlation_id", "mint_correlation_id", "trace_id_from"]

_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:/+=\-]{1,128}")
_PROPAGATOR: Final = TraceContextTextMapPropagator()


def correlation_id(request_ids: Sequence[str], traceparents: Sequence[str]) -> str:
    """The correlation id of one request (the rules above)."""
    if len(request_ids) == 1:
        accepted = accepted_request_id(request_ids[0])
        if accepted is not None:
            return accepted
    if len(traceparents) == 1:
        trace_id = trace_id_from(traceparents[0])
        if trace_id is not None:
            return trace_id
    return mint_correlation_id()


def accepted_request_id(value: str) -> str | None:
    return value if _REQUEST_ID.fullmatch(value) else None


def trace_id_from(traceparent: str) -> str | None:
    """The ``trace-id`` of a valid ``traceparent`` header value, else None (parsed by
    OpenTelemetry's W3C Trace Context propagator, the one the spans use)."""
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return None
    return trace.format_trace_id(span_context.trace_id)


def mint_correlation_id() -> str:
    return secrets.token_hex(16)
