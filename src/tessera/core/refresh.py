"""Refresh token families and the rotation rule (RFC 9700 §4.14.2).

Every use of a refresh token rotates it. The successor is derived from the presented
token (see ``derive_secret``), so a concurrent retry of the *same* request within a short
grace window can be answered with the *same* successor: never a second branch of the
family. Presenting a rotated token outside that window is reuse: the family and its
session are revoked.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["RefreshFamily", "RefreshToken", "RotationVerdict", "judge_presentation"]


@dataclass(frozen=True, slots=True)
class RefreshFamily:
    family_id: str
    sid: str
    client_id: str
    user_id: str
    tenant_id: str
    scope: frozenset[str]
    audience: tuple[str, ...]
    created_at: float
    expires_at: float
    revoked_at: float | None = None
    revoke_reason: str | None = None
    jkt: str | None = None
    """RFC 9449 §5: a public client's family is bound to the DPoP key (its RFC 7638
    thumbprint) it was obtained with; every refresh must prove that key."""


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: str
    family_id: str
    generation: int
    issued_at: float
    expires_at: float
    access_jti: str
    rotated_at: float | None = None
    successor_hash: str | None = None


class RotationVerdict(Enum):
    ROTATE = "rotate"
    """The token is the family head: rotate it."""
    REPLAY_SUCCESSOR = "replay_successor"
    """A retry within the grace window: answer with the successor already issued."""
    REUSE = "reuse"
    """A rotated token presented again: revoke the family and its session."""
    EXPIRED = "expired"
    REVOKED = "revoked"


def judge_presentation(
    token: RefreshToken,
    family: RefreshFamily,
    *,
    session_active: bool,
    successor_is_head: bool,
    now: float,
    grace_seconds: float,
) -> RotationVerdict:
    """Decide what a presented refresh token gets. Pure: the store acts on the verdict."""
    if family.revoked_at is not None or not session_active:
        return RotationVerdict.REVOKED
    if now >= token.expires_at or now >= family.expires_at:
        return RotationVerdict.EXPIRED
    if token.rotated_at is None:
        return RotationVerdict.ROTATE
    if grace_seconds > 0 and successor_is_head and now - token.rotated_at <= grace_seconds:
        return RotationVerdict.REPLAY_SUCCESSOR
    return RotationVerdict.REUSE
