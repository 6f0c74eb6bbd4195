"""The revocation state keeps its entries lean (bench/scale.py measures it): expiry times
are whole seconds shared between entries, rounded *up* (an entry may outlive its
``expires_at`` by under a second, never the reverse), and keys are the state's own
copies. None of it changes a decision."""

from __future__ import annotations

import math

import pytest

from tessera.verifier import InvalidEvent
from tessera.verifier.revocation import EventKind, RevocationState


def event(seq: int, kind: str, key: str, expires_at: float, **data: object) -> dict[str, object]:
    return {"seq": seq, "kind": kind, "key": key, "at": 1000.0, "expires_at": expires_at,
            "data": data}


def test_expiry_is_rounded_up_and_shared() -> None:
    state = RevocationState()
    state.load_snapshot({"seq": 2, "events": [
        event(1, EventKind.TOKEN_REVOKED, "j1", 1300.2),
        event(2, EventKind.SESSION_VERSION_BUMPED, "s1", 1300.7, sv=3)]})
    jti_expiry = state._jtis.data["j1"]
    version_expiry = state._versions.data["s1"][1]
    assert jti_expiry == 1301 and version_expiry == 1301
    assert jti_expiry is version_expiry  # one object for the second
    assert state.prune(1300.9) == 0  # not before its (rounded-up) expiry
    assert state.prune(1400.0) == 2  # (pruning works in buckets of 60 s)


def test_keys_are_copies_and_still_match() -> None:
    key = "".join(["s", "i", "d", "-", "\ud800x"])  # a lone surrogate survives the copy
    state = RevocationState()
    state.apply(event(1, EventKind.SESSION_REVOKED, key, 5000.0))
    (stored,) = state._sids.data
    assert stored == key and stored is not key


def test_an_infinite_expiry_is_refused_not_a_crash() -> None:
    state = RevocationState()
    with pytest.raises(InvalidEvent):
        state.apply(event(1, EventKind.USER_REVOKED, "u1", math.inf))
    assert state.cursor == 0 and len(state) == 0


def test_the_shared_expiries_stay_bounded() -> None:
    state = RevocationState()
    for seq in range(1, 10_001):
        state.apply(event(seq, EventKind.TOKEN_REVOKED, f"j{seq}", 2000.0 + seq))
    assert len(state._expiries) <= 4097
    assert len(state) == 10_000


def test_prune_skips_the_tables_until_the_earliest_entry_can_expire_yet_misses_none() -> None:
    """The follower prunes after every batch; until the earliest entry can expire that
    returns at once. An entry added later that expires sooner than everything held
    still goes on time, whatever table it lands in."""
    state = RevocationState(prune_granularity=1.0)
    state.apply(event(1, EventKind.TOKEN_REVOKED, "j1", 5000.0))
    assert state.prune(100.0) == 0
    assert state._quiet_until == 5000.0  # the earliest bucket
    state.apply(event(2, EventKind.USER_REVOKED, "u1", 200.0))
    state.apply(event(3, EventKind.SESSION_VERSION_BUMPED, "s1", 300.0, sv=2))
    assert state.prune(199.0) == 0
    assert state.prune(200.0) == 1 and "u1" not in state._users.data
    assert state.prune(300.0) == 1 and "s1" not in state._versions.data
    assert state.prune(4999.0) == 0 and "j1" in state._jtis.data
    assert state.prune(5000.0) == 1 and len(state) == 0
    assert state._quiet_until == math.inf
    state.apply(event(4, EventKind.SESSION_REVOKED, "sid", 6000.0))
    assert state.prune(6000.0) == 1
