"""RevocationFollower: LOADING → FOLLOWING ⇄ FILLING, on a scripted source. Freshness comes
only from watermarks; gaps and new epochs are filled from the source of truth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from tessera.core.clock import FixedClock
from tessera.core.freshness import Phase, Watermark
from tessera.verifier.revocation import (
    ResyncRequired,
    RevocationFollower,
    RevocationState,
    SourceUnavailable,
)
from tessera.verifier.revocation.follower import FeedBatch
from tests.polling import eventually

from ._support import NOW


def ev(seq: int, key: str | None = None) -> dict[str, Any]:
    return {"seq": seq, "kind": "session.revoked", "key": key or f"sid-{seq}", "at": NOW,
            "expires_at": NOW + 600, "data": {}}


Step = FeedBatch | Exception


class ScriptedSource:
    """``snapshot`` and ``events_after`` answer from ``outbox`` (the source of truth);
    each ``follow`` call plays the next script (a list of batches or exceptions), then
    waits forever."""

    def __init__(self, outbox: list[dict[str, Any]], scripts: list[list[Step]], *,
                 ranges: bool = True, page: int = 2, snapshot_upto: int | None = None
                 ) -> None:
        self.outbox = outbox
        self.snapshot_upto = snapshot_upto
        """The snapshot was taken when the outbox ended here (later events came after)."""
        self.scripts = scripts
        self.ranges = ranges
        self.page = page
        self.calls: list[str] = []
        self.snapshot_down = False

    def _watermark(self) -> dict[str, Any]:
        head = max((e["seq"] for e in self.outbox), default=0)
        return {"head": head, "at": NOW, "epoch": None}

    async def snapshot(self) -> Mapping[str, Any]:
        self.calls.append("snapshot")
        if self.snapshot_down:
            raise SourceUnavailable("snapshot: HTTP 503")
        events = [e for e in self.outbox
                  if self.snapshot_upto is None or e["seq"] <= self.snapshot_upto]
        head = max((e["seq"] for e in events), default=0)
        return {"seq": head, "events": events,
                "watermark": {"head": head, "at": NOW - 1, "epoch": None}}

    async def events_after(self, after: int) -> Mapping[str, Any]:
        self.calls.append(f"range>{after}")
        if not self.ranges:
            raise ResyncRequired("no ranges")
        rest = [e for e in self.outbox if e["seq"] > after]
        chunk = rest[:self.page]
        more = len(rest) > self.page
        return {"events": chunk, "next": chunk[-1]["seq"] if more else None,
                "watermark": self._watermark()}

    async def follow(self, after: int) -> AsyncIterator[FeedBatch]:
        self.calls.append(f"follow>{after}")
        script = self.scripts.pop(0) if self.scripts else []
        for step in script:
            if isinstance(step, Exception):
                raise step
            yield step
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        return None


async def run(follower: RevocationFollower, predicate: Callable[[], bool]) -> None:
    follower.start()
    try:
        await eventually(predicate)
    finally:
        await follower.aclose()


def follower_for(source: ScriptedSource, state: RevocationState | None = None
                 ) -> RevocationFollower:
    return RevocationFollower(state or RevocationState(), source, clock=FixedClock(NOW + 1),
                              min_backoff=0.001, max_backoff=0.002)


async def test_a_snapshot_then_watermarked_batches() -> None:
    source = ScriptedSource([ev(1)], [[FeedBatch([ev(2)]),
                                       FeedBatch(watermark=Watermark(2, NOW + 1, "e1"))]])
    follower = follower_for(source)
    await run(follower, lambda: follower.state.fresh_at == NOW + 1)
    assert follower.state.cursor == 2 and follower.phase is Phase.FOLLOWING
    assert follower.epoch == "e1"
    assert source.calls == ["snapshot", "follow>1"]


async def test_a_gap_is_filled_from_the_source_of_truth_page_by_page() -> None:
    outbox = [ev(1), ev(2), ev(3), ev(5), ev(8)]
    source = ScriptedSource(outbox, [[ResyncRequired("trimmed")], []], snapshot_upto=1)
    follower = follower_for(source)
    await run(follower, lambda: source.calls[-1:] == ["follow>8"])
    assert source.calls == ["snapshot", "follow>1", "range>1", "range>3", "follow>8"]
    assert follower.state.cursor == 8 and follower.resyncs == 1
    assert follower.state.fresh_at == NOW, "the range's own watermark proves freshness"


async def test_a_new_epoch_is_checked_with_the_source_before_it_counts() -> None:
    """The channel comes back as a new incarnation (Redis restarted empty): its
    watermark is not trusted until the range after our cursor was fetched."""
    script = [FeedBatch(watermark=Watermark(1, NOW - 0.5, "e1")),
              FeedBatch(watermark=Watermark(1, NOW + 0.9, "e2"))]
    source = ScriptedSource([ev(1), ev(2)], [script, []], snapshot_upto=1)
    follower = follower_for(source)
    await run(follower, lambda: source.calls[-1:] == ["follow>2"])
    assert source.calls == ["snapshot", "follow>1", "range>1", "follow>2"]
    assert follower.epoch_changes == 1 and follower.epoch == "e2"
    assert follower.state.cursor == 2
    assert follower.state.fresh_at == NOW  # from the range, not from e2's NOW + 0.9


async def test_a_source_without_ranges_reloads_the_snapshot() -> None:
    source = ScriptedSource([ev(1)], [[ResyncRequired("lost")], []], ranges=False)
    follower = follower_for(source)
    await run(follower, lambda: source.calls.count("snapshot") == 2
              and source.calls[-1] == "follow>1")
    assert source.calls == ["snapshot", "follow>1", "range>1", "snapshot", "follow>1"]


async def test_never_loaded_until_a_snapshot_arrives() -> None:
    source = ScriptedSource([ev(1)], [])
    source.snapshot_down = True
    follower = follower_for(source)
    follower.start()
    try:
        await eventually(lambda: follower.reconnects >= 3)
        assert not follower.state.loaded and follower.phase is Phase.LOADING
        assert follower.state.lag(NOW) == float("inf")
        source.snapshot_down = False
        await eventually(lambda: follower.state.loaded)
    finally:
        await follower.aclose()
    assert follower.state.cursor == 1 and follower.state.fresh_at == NOW - 1  # its watermark


@pytest.mark.parametrize("page", [{"events": "x", "next": None},
                                  {"events": [], "next": 0},
                                  {"events": [], "next": True},
                                  {"events": [], "next": None, "watermark": {"head": -1}}])
async def test_a_malformed_page_is_retried_never_half_trusted(page: dict[str, Any]) -> None:
    source = ScriptedSource([ev(1)], [[ResyncRequired("gap")]])
    answers = [page]

    async def events_after(after: int) -> Mapping[str, Any]:
        source.calls.append(f"range>{after}")
        return answers.pop(0) if answers else {"events": [ev(2)], "next": None,
                                               "watermark": {"head": 2, "at": NOW}}

    source.events_after = events_after  # type: ignore[method-assign]
    follower = follower_for(source)
    await run(follower, lambda: follower.state.cursor == 2)
    assert follower.reconnects >= 1
    assert source.calls.count("range>1") == 2
