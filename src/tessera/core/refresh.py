"""Refresh token families and the rotation rule (RFC 9700 §4.14.2).

Every use of a refresh token rotates it. The successor is derived from the presented
token (see ``derive_secret``), so a retry of the *same* request can be answered with the
*same* successor: never a second branch of the family. Two windows allow that:

- ``grace_seconds`` (short): concurrent retries of one request;
- ``retry_seconds`` (longer, e.g. 60 s): a client retrying after it lost the response,
  for instance because the service crashed between commit and answer.

Either way only while the successor has *never been used*: once the client used the new
token, the old one can only come from someone else, and presenting it is reuse (RFC 9700
§4.14.2): the family and its session are revoked. Past both windows, too.
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
    """A retry while the successor is unused and within the grace or retry window: answer
    with the successor already issued."""
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
    retry_seconds: float = 0.0,
) -> RotationVerdict:
    """Decide what a presented refresh token gets. Pure: the store acts on the verdict.

    ``successor_is_head``: the successor exists and has never been rotated (used)."""
    if family.revoked_at is not None or not session_active:
        return RotationVerdict.REVOKED
    if now >= token.expires_at or now >= family.expires_at:
        return RotationVerdict.EXPIRED
    if token.rotated_at is None:
        return RotationVerdict.ROTATE
    window = max(grace_seconds, retry_seconds)
    if window > 0 and successor_is_head and now - token.rotated_at <= window:
        return RotationVerdict.REPLAY_SUCCESSOR
    return RotationVerdict.REUSE
