"""Bounds on the identity service's own login sessions: idle and absolute timeouts, and a
per-user limit on concurrent sessions (issue 13, item 2).

A tenant may set its own policy; each field it leaves unset falls back to the global
default (``settings.sessions``). Pure rules, no I/O: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from tessera.core.sessions import Session

__all__ = ["END_OLDEST", "ON_LIMIT", "REFUSE", "SessionPolicy", "ended_by_timeout",
           "over_limit", "parse_duration"]

REFUSE: Final = "refuse"
END_OLDEST: Final = "end_oldest"
ON_LIMIT: Final = (REFUSE, END_OLDEST)
OnLimit = Literal["refuse", "end_oldest"]
T = TypeVar("T")

IDLE_TIMEOUT: Final = "idle_timeout"
ABSOLUTE_TIMEOUT: Final = "absolute_timeout"
SESSION_LIMIT: Final = "session_limit"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """One tenant's bounds (None: not set, the global default applies; 0 as a timeout or
    limit in the *effective* policy means "no bound")."""

    tenant_id: str
    idle_timeout: float | None = None
    """Seconds a session may go unused before its cookie stops working."""
    absolute_timeout: float | None = None
    """Seconds after sign-in (``created_at``) when the session ends, used or not."""
    max_sessions: int | None = None
    """Concurrent active sessions one user may hold."""
    on_limit: str | None = None
    """``refuse`` the new sign-in, or ``end_oldest`` (revoke the oldest session)."""
    updated_at: float = 0.0

    def over(self, defaults: SessionPolicy) -> SessionPolicy:
        """This policy with every unset field taken from ``defaults``."""
        return SessionPolicy(
            tenant_id=self.tenant_id,
            idle_timeout=_first(self.idle_timeout, defaults.idle_timeout),
            absolute_timeout=_first(self.absolute_timeout, defaults.absolute_timeout),
            max_sessions=_first(self.max_sessions, defaults.max_sessions),
            on_limit=self.on_limit or defaults.on_limit or REFUSE,
            updated_at=self.updated_at)


def _first(value: T | None, default: T | None) -> T | None:
    return value if value is not None else default


def ended_by_timeout(session: Session, policy: SessionPolicy, now: float) -> str | None:
    """Why ``session`` is over under ``policy`` at ``now`` (``absolute_timeout`` first,
    then ``idle_timeout``), or None while it is within both bounds."""
    if policy.absolute_timeout and now >= session.created_at + policy.absolute_timeout:
        return ABSOLUTE_TIMEOUT
    if policy.idle_timeout and now >= session.last_seen_at + policy.idle_timeout:
        return IDLE_TIMEOUT
    return None


def over_limit(active: list[Session], policy: SessionPolicy) -> list[Session]:
    """The sessions to end, oldest first, so that one more fits under ``max_sessions``
    (empty when there is room or no limit). Impersonation sessions do not count."""
    if not policy.max_sessions:
        return []
    own = sorted((s for s in active if s.actor_sid is None and s.actor_jti is None),
                 key=lambda s: (s.created_at, s.sid))
    excess = len(own) + 1 - policy.max_sessions
    return own[:excess] if excess > 0 else []


_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d`` → seconds; ``0``/``off`` → 0 (no bound).
    Raises ``ValueError`` on anything else (negative, unknown unit, too long)."""
    value = text.strip().lower()
    if value in ("0", "off", "none"):
        return 0.0
    unit = value[-1:] if value[-1:] in _UNITS else "s"
    number = value[:-1] if value[-1:] in _UNITS else value
    if not number.isdigit() or len(number) > 9:
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 30m, 12h, 7d)")
    seconds = float(int(number) * _UNITS[unit])
    if seconds > 366 * 86400:
        raise ValueError(f"duration too long: {text!r} (at most a year)")
    return seconds
