"""RevocationState: events, snapshot + tail, idempotent replay, pruning, lag."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import pytest

from tessera.verifier import Denied, InvalidEvent, Reason, VerifiedToken
from tessera.verifier.revocation import EventKind, RevocationState

from ._support import NOW


def token(**overrides: Any) -> VerifiedToken:
    values: dict[str, Any] = {
        "kid": "k", "alg": "EdDSA", "iss": "i", "sub": "user-1", "aud": ("a",),
        "exp": NOW + 300, "iat": NOW, "nbf": None, "jti": "jti-1", "client_id": "client-1",
        "scopes": frozenset(), "tid": "tenant-1", "sid": "sid-1", "sv": 1, "acr": None,
        "amr": (), "auth_time": None, "cnf_jkt": None, "act": None,
        "claims": MappingProxyType({}),
    }
    values.update(overrides)
    return VerifiedToken(**values)


def event(seq: int, kind: str, key: str, *, at: float = NOW, ttl: float = 600,
          **data: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "key": key, "at": at, "expires_at": at + ttl,
            "data": data}


def denial(state: RevocationState, tok: VerifiedToken) -> Reason | None:
    try:
        state.check(tok)
    except Denied as denied:
        return denied.reason
    return None


def test_event_kinds_match_the_core_names() -> None:
    from tessera.core.revocation import RevocationKind

    assert EventKind is RevocationKind
    assert EventKind.SESSION_REVOKED == "session.revoked" in RevocationKind.ALL


def test_empty_state_accepts_and_is_still_truthy() -> None:
    state = RevocationState()
    assert denial(state, token()) is None
    assert len(state) == 0 and bool(state)


def test_each_grain_revokes_only_its_tokens() -> None:
    state = RevocationState()
    state.apply(event(1, "token.revoked", "jti-1"))
    state.apply(event(2, "session.revoked", "sid-2"))
    state.apply(event(3, "family.revoked", "fam-3", sid="sid-3", client_id="client-1"))
    state.apply(event(4, "user.revoked", "user-4"))
    state.apply(event(5, "tenant.revoked", "tenant-5"))
    state.apply(event(6, "client.revoked", "client-6"))
    state.apply(event(7, "session.version_bumped", "sid-7", sv=5))
    assert denial(state, token()) is Reason.TOKEN_REVOKED
    assert denial(state, token(jti="other")) is None
    assert denial(state, token(jti="j", sid="sid-2")) is Reason.SESSION_REVOKED
    assert denial(state, token(jti="j", sid="sid-3")) is Reason.FAMILY_REVOKED
    # a family is one client's grant in the session: other clients and later tokens live
    assert denial(state, token(jti="j", sid="sid-3", client_id="client-9")) is None
    assert denial(state, token(jti="j", sid="sid-3", iat=NOW + 1)) is None
    assert denial(state, token(jti="j", sub="user-4", iat=NOW - 1)) is Reason.USER_REVOKED
    assert denial(state, token(jti="j", tid="tenant-5", iat=NOW)) is Reason.TENANT_REVOKED
    assert denial(state, token(jti="j", client_id="client-6")) is Reason.CLIENT_REVOKED
    assert denial(state, token(jti="j", sid="sid-7", sv=4)) is Reason.STALE_SESSION_VERSION
    assert denial(state, token(jti="j", sid="sid-7", sv=5)) is None
    assert denial(state, token(jti="j", sid=None, sv=None)) is None
    assert state.cursor == 7
    assert len(state) == 8  # one entry per event, two for family.revoked (id + its grant)


def test_revoked_before_uses_iat_and_data_before() -> None:
    state = RevocationState()
    state.apply(event(1, "user.revoked", "user-1", at=NOW, before=NOW - 100))
    assert denial(state, token(iat=NOW - 100)) is Reason.USER_REVOKED
    assert denial(state, token(iat=NOW - 99)) is None
    state.apply(event(2, "user.revoked", "user-1", at=NOW - 50))
    assert denial(state, token(iat=NOW - 60)) is Reason.USER_REVOKED
    state.apply(event(3, "user.revoked", "user-1", at=NOW - 500))  # older: never lowers
    assert denial(state, token(iat=NOW - 60)) is Reason.USER_REVOKED


def test_session_version_never_goes_down() -> None:
    state = RevocationState()
    state.apply(event(1, "session.version_bumped", "sid-1", sv=3))
    state.apply(event(2, "session.version_bumped", "sid-1", sv=2))
    assert denial(state, token(sv=2)) is Reason.STALE_SESSION_VERSION
    assert denial(state, token(sv=3)) is None


def test_replay_is_idempotent() -> None:
    state = RevocationState()
    events = [event(1, "token.revoked", "a"), event(2, "session.version_bumped", "s", sv=2),
              event(3, "key.rotated", "kid-2")]
    assert [state.apply(e) for e in events] == [True, True, True]
    before = (len(state), state.cursor, state.key_epoch)
    assert [state.apply(e) for e in events] == [False, False, False]
    assert (len(state), state.cursor, state.key_epoch) == before
    # an older event arriving late after the cursor moved is ignored too
    assert state.apply(event(2, "token.revoked", "late")) is False
    assert denial(state, token(jti="late")) is None


def test_gaps_in_seq_are_allowed() -> None:
    state = RevocationState()
    assert state.apply(event(10, "token.revoked", "a"))
    assert state.apply(event(15, "token.revoked", "b"))
    assert state.cursor == 15


def test_snapshot_then_tail() -> None:
    state = RevocationState()
    state.apply(event(1, "token.revoked", "gone-after-snapshot"))
    snapshot = {"seq": 40, "events": [
        {"kind": "session.revoked", "key": "sid-1", "at": NOW, "expires_at": NOW + 600},
        event(39, "session.version_bumped", "sid-9", sv=2),
    ]}
    state.load_snapshot(snapshot, now=NOW)
    assert state.cursor == 40 and state.loaded
    assert state.lag(NOW) == math.inf  # a snapshot without a watermark proves nothing
    assert denial(state, token(jti="gone-after-snapshot", sid=None, sv=None)) is None
    assert denial(state, token()) is Reason.SESSION_REVOKED
    assert state.apply(event(40, "token.revoked", "x")) is False  # already in the snapshot
    assert state.apply(event(41, "token.revoked", "x")) is True
    assert denial(state, token(jti="x", sid=None, sv=None)) is Reason.TOKEN_REVOKED


def test_invalid_snapshot_keeps_the_current_state() -> None:
    state = RevocationState()
    state.apply(event(1, "token.revoked", "a"))
    with pytest.raises(InvalidEvent):
        state.load_snapshot({"seq": 5, "events": [event(2, "token.revoked", "b"), {"kind": 1}]})
    with pytest.raises(InvalidEvent):
        state.load_snapshot({"seq": "5", "events": []})
    with pytest.raises(InvalidEvent):
        state.load_snapshot({"seq": 5})
    assert state.cursor == 1 and denial(state, token(jti="a")) is Reason.TOKEN_REVOKED
    assert denial(state, token(jti="b")) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "token.revoked", "key": "a", "at": 1, "expires_at": 2},
        {"seq": True, "kind": "token.revoked", "key": "a", "at": 1, "expires_at": 2},
        {"seq": 1, "kind": "token.revoked", "key": "", "at": 1, "expires_at": 2},
        {"seq": 1, "kind": "token.revoked", "key": "a", "at": "x", "expires_at": 2},
        {"seq": 1, "kind": "token.revoked", "key": "a", "at": 1, "expires_at": math.nan},
        {"seq": 1, "kind": "token.revoked", "key": "a", "at": 1, "expires_at": 2, "data": []},
        {"seq": 1, "kind": "session.version_bumped", "key": "s", "at": 1, "expires_at": 2},
        {"seq": 1, "kind": "session.version_bumped", "key": "s", "at": 1, "expires_at": 2,
         "data": {"sv": "2"}},
        {"seq": 1, "kind": "family.revoked", "key": "f", "at": 1, "expires_at": 2,
         "data": {"sid": 3}},
        {"seq": 1, "kind": "user.revoked", "key": "u", "at": 1, "expires_at": 2,
         "data": {"before": None}},
    ],
)
def test_malformed_events_are_rejected_without_moving_the_cursor(bad: dict[str, Any]) -> None:
    state = RevocationState()
    with pytest.raises(InvalidEvent):
        state.apply(bad)
    assert state.cursor == 0 and len(state) == 0


def test_unknown_kinds_advance_the_cursor_and_are_counted() -> None:
    state = RevocationState()
    assert state.apply(event(1, "device.revoked", "d"))
    assert (state.cursor, state.ignored_events, len(state)) == (1, 1, 0)


def test_key_rotated_bumps_the_epoch() -> None:
    state = RevocationState()
    state.apply(event(1, "key.rotated", "kid-2"))
    state.apply(event(2, "key.rotated", "kid-3"))
    assert state.key_epoch == 2 and len(state) == 0


def test_pruning_drops_only_expired_entries() -> None:
    state = RevocationState(prune_granularity=10)
    state.apply(event(1, "token.revoked", "short", ttl=30))
    state.apply(event(2, "token.revoked", "long", ttl=300))
    state.apply(event(3, "user.revoked", "user-1", ttl=30))
    state.apply(event(4, "session.version_bumped", "sid-1", ttl=30, sv=2))
    state.apply(event(5, "family.revoked", "fam", ttl=30, sid="sid-f", client_id="c"))
    assert len(state) == 6
    assert state.prune(NOW + 29) == 0
    assert state.prune(NOW + 40) == 5
    assert len(state) == 1
    assert denial(state, token(jti="long", sid=None, sv=None)) is Reason.TOKEN_REVOKED
    assert denial(state, token(jti="short", iat=NOW - 100)) is None
    assert state.prune(NOW + 400) == 1 and len(state) == 0


def test_extended_expiry_survives_the_earlier_bucket() -> None:
    state = RevocationState(prune_granularity=10)
    state.apply(event(1, "session.revoked", "sid-1", ttl=30))
    state.apply(event(2, "session.revoked", "sid-1", ttl=300))
    state.apply(event(3, "user.revoked", "user-1", ttl=30))
    state.apply(event(4, "user.revoked", "user-1", ttl=300))
    assert state.prune(NOW + 100) == 0
    assert denial(state, token(jti="j")) is Reason.SESSION_REVOKED
    assert denial(state, token(jti="j", sid=None, sv=None)) is Reason.USER_REVOKED


def test_memory_stays_bounded_under_churn() -> None:
    state = RevocationState(prune_granularity=5)
    for i in range(1, 5001):
        state.apply(event(i, "token.revoked", f"jti-{i}", at=NOW + i, ttl=60), now=NOW + i)
    assert len(state) <= 66


def test_lag_and_staleness() -> None:
    state = RevocationState()
    assert state.lag(NOW) == math.inf and state.is_stale(NOW, 3600)
    assert not state.loaded
    state.apply(event(1, "token.revoked", "a"), now=NOW)
    assert state.lag(NOW) == math.inf, "an event is not a proof of freshness"
    state.observe_watermark({"head": 1, "at": NOW, "epoch": "e1"}, now=NOW)
    assert state.fresh_at == NOW
    assert state.lag(NOW + 2.5) == 2.5
    assert not state.is_stale(NOW + 5, 5) and state.is_stale(NOW + 5.1, 5)
    state.observe_watermark({"head": 1, "at": NOW + 10, "epoch": "e1"}, now=NOW + 10)
    assert state.lag(NOW + 10) == 0
    state.observe_watermark({"head": 1, "at": NOW + 1, "epoch": "e1"}, now=NOW + 11)
    assert state.fresh_at == NOW + 10, "an older watermark never moves time back"


def test_a_watermark_counts_only_once_the_cursor_reached_its_head() -> None:
    state = RevocationState()
    state.load_snapshot({"seq": 3, "events": []}, now=NOW)
    state.observe_watermark({"head": 5, "at": NOW + 1, "epoch": "e1"}, now=NOW + 1)
    assert state.lag(NOW + 1) == math.inf, "events 4 and 5 are missing"
    state.apply(event(4, "token.revoked", "a"), now=NOW + 2)
    assert state.lag(NOW + 2) == math.inf
    state.apply(event(5, "token.revoked", "b"), now=NOW + 2)
    assert state.lag(NOW + 2) == 1


def test_a_watermark_from_the_future_counts_from_when_it_arrived() -> None:
    state = RevocationState()
    state.load_snapshot({"seq": 0, "events": []})
    state.observe_watermark({"head": 0, "at": NOW + 300, "epoch": None}, now=NOW)
    assert state.fresh_at == NOW  # a source clock ahead of ours cannot stretch the bound


def test_a_snapshot_watermark_proves_freshness_at_its_time() -> None:
    state = RevocationState()
    state.load_snapshot({"seq": 7, "events": [], "watermark": {"head": 7, "at": NOW - 2,
                                                             "epoch": None}}, now=NOW)
    assert state.loaded and state.lag(NOW) == 2


@pytest.mark.parametrize("bad", [{"head": -1, "at": NOW}, {"head": 1, "at": "x"},
                                 {"head": True, "at": NOW}, {"head": 1, "at": NOW, "epoch": 7},
                                 "nope", {"head": 1, "at": float("nan")}])
def test_malformed_watermarks_are_refused(bad: Any) -> None:
    state = RevocationState()
    with pytest.raises(InvalidEvent):
        state.observe_watermark(bad, now=NOW)
    with pytest.raises(InvalidEvent):
        state.load_snapshot({"seq": 0, "events": [], "watermark": bad})
    assert not state.loaded and state.fresh_at is None


def test_confirm_is_a_hand_fed_states_own_watermark() -> None:
    state = RevocationState()
    state.apply(event(2, "token.revoked", "a"))
    state.confirm(NOW)
    assert state.loaded and state.lag(NOW + 1) == 1
