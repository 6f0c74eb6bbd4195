from __future__ import annotations

from tessera.core.clock import FixedClock
from tessera.core.throttle import FailureWindow


def test_a_key_is_blocked_after_the_limit_until_the_window_slides() -> None:
    clock = FixedClock()
    window = FailureWindow(3, clock, window=60)
    for _ in range(3):
        assert not window.blocked("k")
        window.add("k")
        clock.advance(1)
    assert window.blocked("k") and not window.blocked("other")
    clock.advance(56)  # the first failure is now 59 s old, still inside
    assert window.blocked("k")
    clock.advance(1.5)
    assert not window.blocked("k")


def test_memory_stays_bounded() -> None:
    window = FailureWindow(1, FixedClock(), max_keys=10)
    for i in range(25):
        window.add(f"k{i}")
    assert len(window._failures) <= 10
