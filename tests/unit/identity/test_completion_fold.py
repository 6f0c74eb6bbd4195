"""Logout completion decided in memory: a batch of verifier reports folded into the
registry in apply order, then the events each report's reach completes."""

from __future__ import annotations

from tessera.identity.completion import Reach, completions_reached, fold_reports
from tessera.store.ports import VerifierReport

T = 1_800_000_000.0


def report(verifier_id: str, cursor: int, at: float, *, first_seen: float | None = None
           ) -> VerifierReport:
    return VerifierReport(client_id="feed", verifier_id=verifier_id, service="orders",
                          cursor=cursor, reported_at=at,
                          first_seen=at if first_seen is None else first_seen)


def test_reports_are_folded_in_apply_order_and_the_low_cursor_is_reached_after_each() -> None:
    known = [report("a", 1, T - 5), report("b", 1, T - 5)]
    batch = [(report("b", 4, T), T - 0.2),  # applied later than a's, arrived first
             (report("a", 3, T), T - 0.4)]
    rows, reached = fold_reports(known, batch, head=10, live_seconds=30)
    assert [(r.verifier_id, r.cursor, r.first_seen) for r in rows] == [
        ("a", 3, T - 5), ("b", 4, T - 5)], "first_seen of a known verifier is kept"
    assert reached == [Reach(low=1, verifiers=2, at=T - 0.4, earliest=T - 5),
                       Reach(low=3, verifiers=2, at=T - 0.2, earliest=T - 5)]


def test_a_cursor_past_the_head_counts_as_the_head() -> None:
    rows, reached = fold_reports([], [(report("a", 99, T), T)], head=7, live_seconds=30)
    assert rows[0].cursor == 7 and reached[0].low == 7


def test_a_verifier_silent_for_longer_than_live_seconds_is_not_waited_for() -> None:
    known = [report("gone", 0, T - 60), report("a", 0, T - 1)]
    _, reached = fold_reports(known, [(report("a", 5, T), T)], head=5, live_seconds=30)
    assert reached == [Reach(low=5, verifiers=1, at=T, earliest=T - 1)]


def test_no_live_verifier_reaches_nothing() -> None:
    rows, reached = fold_reports([], [], head=5, live_seconds=30)
    assert rows == [] and reached == []


def test_each_event_completes_at_the_first_reach_that_covers_it_once() -> None:
    reached = [Reach(low=2, verifiers=3, at=T + 1, earliest=T),
               Reach(low=1, verifiers=4, at=T + 2, earliest=T),  # a new verifier behind
               Reach(low=4, verifiers=4, at=T + 3, earliest=T)]
    events = [(2, T - 1), (3, T - 0.5), (4, T)]
    done = completions_reached(reached, events, done=1)
    assert [(c.seq, c.completed_at, c.verifiers, c.seconds) for c in done] == [
        (2, T + 1, 3, 2.0), (3, T + 3, 4, 3.5), (4, T + 3, 4, 3.0)]


def test_events_at_or_below_done_are_not_completed_again() -> None:
    reached = [Reach(low=3, verifiers=1, at=T, earliest=T - 9)]
    assert completions_reached(reached, [], done=3) == []
    assert [c.seq for c in completions_reached(reached, [(3, T - 1)], done=2)] == [3]


def test_the_lowest_cursor_follows_every_update_up_or_down() -> None:
    known = [report("a", 4, T - 1), report("b", 6, T - 1)]
    batch = [(report("a", 7, T), T + 0.1), (report("a", 9, T), T + 0.2),
             (report("b", 2, T), T + 0.3),  # b restarted: behind again
             (report("b", 9, T), T + 0.4)]
    _, reached = fold_reports(known, batch, head=10, live_seconds=30)
    assert [r.low for r in reached] == [6, 6, 2, 9]


def test_liveness_is_judged_once_for_the_batch_and_never_drops_a_verifier_early() -> None:
    """``old`` reported 30 s before the first arrival: live for the whole batch, even
    when a later report of the batch arrives more than 30 s after it (waited for, which
    can only delay a completion, never record it early)."""
    known = [report("old", 1, T - 30), report("a", 1, T - 1)]
    batch = [(report("a", 5, T), T), (report("a", 6, T + 0.5), T + 0.5)]
    _, reached = fold_reports(known, batch, head=10, live_seconds=30)
    assert [(r.low, r.verifiers) for r in reached] == [(1, 2), (1, 2)]
