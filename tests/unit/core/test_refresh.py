"""The rotation rule of RFC 9700 §4.14.2 as a pure function."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera.core.refresh import RefreshFamily, RefreshToken, RotationVerdict, judge_presentation

NOW = 1_000_000.0
FAMILY = RefreshFamily(family_id="f", sid="s", client_id="c", user_id="u", tenant_id="t",
                       scope=frozenset({"a"}), audience=("x",), created_at=NOW - 100,
                       expires_at=NOW + 1000)
TOKEN = RefreshToken(token_hash="h", family_id="f", generation=0, issued_at=NOW - 10,
                     expires_at=NOW + 100, access_jti="j")


def judge(token: RefreshToken = TOKEN, family: RefreshFamily = FAMILY, *, active: bool = True,
          head: bool = False, now: float = NOW, grace: float = 5, retry: float = 0.0
          ) -> RotationVerdict:
    return judge_presentation(token, family, session_active=active, successor_is_head=head,
                              now=now, grace_seconds=grace, retry_seconds=retry)


def test_the_family_head_rotates() -> None:
    assert judge() is RotationVerdict.ROTATE


def test_a_retry_within_grace_replays_the_successor() -> None:
    rotated = replace(TOKEN, rotated_at=NOW - 2, successor_hash="h2")
    assert judge(rotated, head=True) is RotationVerdict.REPLAY_SUCCESSOR


@pytest.mark.parametrize(("age", "head"), [(6.0, True), (1.0, False)])
def test_a_rotated_token_outside_grace_or_behind_the_head_is_reuse(age: float,
                                                                   head: bool) -> None:
    rotated = replace(TOKEN, rotated_at=NOW - age, successor_hash="h2")
    assert judge(rotated, head=head) is RotationVerdict.REUSE


def test_zero_grace_makes_any_second_use_reuse() -> None:
    """Even a loser of a race whose clock reads the winner's instant (or earlier)."""
    rotated = replace(TOKEN, rotated_at=NOW, successor_hash="h2")
    for now in (NOW - 0.001, NOW, NOW + 0.001):
        assert judge(rotated, head=True, grace=0.0, now=now) is RotationVerdict.REUSE


@pytest.mark.parametrize("age", [6.0, 30.0, 60.0])
def test_a_lost_response_retry_within_the_retry_window_replays_an_unused_successor(
        age: float) -> None:
    rotated = replace(TOKEN, rotated_at=NOW - age, successor_hash="h2")
    assert judge(rotated, head=True, retry=60) is RotationVerdict.REPLAY_SUCCESSOR


@pytest.mark.parametrize(("age", "head"), [(60.5, True), (10.0, False), (1.0, False)])
def test_past_the_retry_window_or_after_the_successor_was_used_it_is_theft(
        age: float, head: bool) -> None:
    rotated = replace(TOKEN, rotated_at=NOW - age, successor_hash="h2")
    assert judge(rotated, head=head, retry=60) is RotationVerdict.REUSE


def test_revoked_family_or_ended_session_wins_over_everything() -> None:
    assert judge(family=replace(FAMILY, revoked_at=NOW - 1)) is RotationVerdict.REVOKED
    assert judge(active=False) is RotationVerdict.REVOKED


def test_expiry_of_token_or_family() -> None:
    assert judge(now=TOKEN.expires_at) is RotationVerdict.EXPIRED
    assert judge(family=replace(FAMILY, expires_at=NOW)) is RotationVerdict.EXPIRED
