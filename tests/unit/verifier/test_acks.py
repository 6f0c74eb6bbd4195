"""AckReporter: the applied seq goes to the identity service at once when it moves, and on
a regular beat; failures are counted, never raised."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from tessera.core.clock import FixedClock
from tessera.verifier.revocation import RevocationState
from tessera.verifier.revocation.acks import AckReporter, default_verifier_id
from tests.polling import eventually

from ._support import NOW

URL = "http://identity.test/revocations/acks"


def reporter(answer: Callable[[httpx.Request], httpx.Response], *, interval: float = 30.0,
             clock: FixedClock | None = None
             ) -> tuple[AckReporter, RevocationState, list[dict[str, object]]]:
    sent: list[dict[str, object]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return answer(request)

    state = RevocationState()
    client = httpx.AsyncClient(transport=httpx.MockTransport(handle), auth=("svc", "s"))
    return AckReporter(client, URL, verifier_id="orders@h/1", service="orders",
                       state=state, clock=clock or FixedClock(NOW), interval=interval,
                       delay=0.01), state, sent


async def test_a_moved_cursor_is_reported_at_once_and_nothing_before_a_snapshot() -> None:
    acks, state, sent = reporter(lambda _: httpx.Response(204))
    acks.start()
    try:
        acks.wake()
        await asyncio.sleep(0.05)
        assert sent == [], "nothing to say before a snapshot was loaded"
        state.load_snapshot({"seq": 4, "events": [], "watermark": {"head": 4, "at": NOW - 2}},
                            now=NOW)
        acks.wake()
        await eventually(lambda: acks.reported == 4)
        assert sent == [{"verifier_id": "orders@h/1", "service": "orders", "cursor": 4,
                         "lag": 2.0, "age": 0.0}]
        acks.wake()  # nothing moved: no report
        await asyncio.sleep(0.05)
        assert len(sent) == 1
    finally:
        await acks.aclose()


async def test_it_beats_while_idle_and_survives_a_failing_identity_service() -> None:
    answers = iter([httpx.Response(503), httpx.Response(204), httpx.Response(204)])
    acks, state, sent = reporter(lambda _: next(answers), interval=0.01)
    state.load_snapshot({"seq": 1, "events": []})
    acks.start()
    try:
        await eventually(lambda: len(sent) >= 3)
    finally:
        await acks.aclose()
    assert acks.failures == 1 and acks.reported == 1
    assert sent[0]["lag"] is None  # never proven fresh: no number to give


def test_the_default_id_names_the_service_host_and_process() -> None:
    ident = default_verifier_id("orders api\n")
    assert ident.startswith("ordersapi@") and "/" in ident
    assert all("!" <= c <= "~" for c in ident) and len(ident) <= 200


async def test_a_report_says_how_long_ago_the_cursor_reached_its_value() -> None:
    clock = FixedClock(NOW)
    acks, state, sent = reporter(lambda _: httpx.Response(204), clock=clock)
    state.load_snapshot({"seq": 7, "events": []})
    acks.wake()  # the follower applied up to 7 now
    clock.advance(0.25)
    assert await acks.report_once()
    assert sent[-1]["cursor"] == 7 and sent[-1]["age"] == 0.25


async def test_closing_just_as_the_cursor_moves_does_not_hang() -> None:
    # A cancel that lands while the wake-up is being delivered must still stop the task
    # (asyncio.wait_for on Python 3.11 swallowed it: aclose then waited forever).
    for yields in range(6):
        ack, state, _ = reporter(lambda _: httpx.Response(204))
        state.load_snapshot({"seq": 0, "events": []})
        ack.start()
        await asyncio.sleep(0)
        ack.wake()
        for _ in range(yields):
            await asyncio.sleep(0)
        closing = asyncio.get_running_loop().create_task(ack.aclose())
        done, _ = await asyncio.wait({closing}, timeout=2)
        assert done == {closing}, f"aclose hung ({yields} yields after the wake-up)"


async def test_reports_are_spread_by_the_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each report waits ``delay`` plus a random share of ``jitter``: verifiers that
    applied the same event do not report in the same instant."""
    from tessera.verifier.revocation import acks as acks_module

    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return high

    monkeypatch.setattr(acks_module.random, "uniform", uniform)
    state = RevocationState()
    state.load_snapshot({"seq": 1, "events": [], "watermark": {"head": 1, "at": NOW}})
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(204)),
                               auth=("svc", "s"))
    reporter = AckReporter(client, URL, verifier_id="orders@h/1", service="orders",
                           state=state, clock=FixedClock(NOW), interval=60, delay=0.0,
                           jitter=0.02)
    reporter.start()
    try:
        reporter.wake()
        await eventually(lambda: reporter.reported == 1, timeout=2)
    finally:
        await reporter.aclose()
        await client.aclose()
    assert draws == [(0.0, 0.02)]


def test_the_service_spreads_its_reports_by_default() -> None:
    from tessera.verifier.settings import VerifierSettings

    assert VerifierSettings.model_fields["report_jitter"].default > 0
