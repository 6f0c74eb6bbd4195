"""Session bounds as pure rules: timeouts, the limit, policy fallback, durations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera.core.session_bounds import (
    SessionPolicy,
    ended_by_timeout,
    over_limit,
    parse_duration,
)
from tessera.core.sessions import Session

T0 = 1_800_000_000.0


def _session(sid: str, created: float = T0, seen: float | None = None) -> Session:
    return Session(sid=sid, user_id="u", tenant_id="t", sv=1, acr="a", amr=("pwd",),
                   auth_time=created, created_at=created, last_seen_at=seen or created)


def test_timeouts_absolute_first_then_idle_and_zero_means_none() -> None:
    policy = SessionPolicy("t", idle_timeout=600, absolute_timeout=3600)
    session = _session("s", seen=T0 + 3000)
    assert ended_by_timeout(session, policy, T0 + 3599) is None
    assert ended_by_timeout(session, policy, T0 + 3600) == "absolute_timeout"
    assert ended_by_timeout(_session("s"), policy, T0 + 600) == "idle_timeout"
    assert ended_by_timeout(_session("s"), SessionPolicy("t", 0, 0), T0 + 10**8) is None


def test_over_limit_names_the_oldest_and_skips_impersonations() -> None:
    policy = SessionPolicy("t", max_sessions=2)
    a, b, c = _session("a", T0), _session("b", T0 + 1), _session("c", T0 + 2)
    acting = replace(_session("x", T0 - 5), actor_sid="admin")
    assert over_limit([b, a], policy) == [a]
    assert over_limit([c, b, a, acting], policy) == [a, b]
    assert over_limit([a], policy) == []
    assert over_limit([a, b, c], SessionPolicy("t", max_sessions=0)) == []


def test_a_tenant_policy_falls_back_field_by_field() -> None:
    defaults = SessionPolicy("*", idle_timeout=900, absolute_timeout=0, max_sessions=3,
                             on_limit="end_oldest")
    own = SessionPolicy("t", idle_timeout=0, max_sessions=None)
    effective = own.over(defaults)
    assert (effective.idle_timeout, effective.absolute_timeout, effective.max_sessions,
            effective.on_limit) == (0, 0, 3, "end_oldest")
    assert SessionPolicy("t").over(SessionPolicy("*")).on_limit == "refuse"


@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("0", 0),
    ("off", 0), (" 5M ", 300)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "-5m", "1.5h", "12y", "400d", "9" * 12, "1e3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
