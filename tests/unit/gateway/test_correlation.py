"""Correlation ids: a safe X-Request-Id is kept, else the traceparent's trace id, else a
fresh one; unsafe values are never echoed."""

from __future__ import annotations

import re

import pytest

from tessera.gateway.correlation import correlation_id, trace_id_from

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
MINTED = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize("value", ["abc-123", "f47ac10b-58cc-4372-a567-0e02b2c3d479",
                                   "req:1/2+3=.x_y", "a" * 128])
def test_a_safe_request_id_is_kept(value: str) -> None:
    assert correlation_id([value], [TRACEPARENT]) == value


@pytest.mark.parametrize("value", ["", "a b", 'a"b', "a\r\nX-Evil: 1", "a" * 129, "é",
                                   "<script>", "a;b", "a,b"])
def test_an_unsafe_request_id_falls_back_to_the_trace_id(value: str) -> None:
    assert correlation_id([value], [TRACEPARENT]) == TRACE
    minted = correlation_id([value], [])
    assert MINTED.fullmatch(minted) and minted != value


def test_two_request_ids_are_ambiguous() -> None:
    assert correlation_id(["a", "b"], [TRACEPARENT]) == TRACE


@pytest.mark.parametrize(("traceparent", "trace_id"), [
    (TRACEPARENT, TRACE),
    (f" {TRACEPARENT} ", TRACE),
    (f"01-{TRACE}-00f067aa0ba902b7-01-future", TRACE),
    (f"00-{TRACE}-00f067aa0ba902b7-01-extra", None),
    (f"ff-{TRACE}-00f067aa0ba902b7-01", None),
    (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),
    (f"00-{TRACE}-{'0' * 16}-01", None),
    (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", None),
    (f"00-{TRACE[:-1]}-00f067aa0ba902b7-01", None),
    ("garbage", None),
    ("", None),
])
def test_trace_id_from_traceparent(traceparent: str, trace_id: str | None) -> None:
    assert trace_id_from(traceparent) == trace_id


def test_minted_ids_are_fresh() -> None:
    first, second = correlation_id([], []), correlation_id([], ["bad"])
    assert MINTED.fullmatch(first) and MINTED.fullmatch(second) and first != second
