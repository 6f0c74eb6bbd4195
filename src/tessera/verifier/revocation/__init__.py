"""Revocation state and how it is kept current.

``state``     RevocationState: what is revoked (jti, sid + version, family, user, tenant,
              client), with watermarks proving how fresh it is (DESIGN §3)
``history``   RevocationHistory: revocations with their times (envelopes authorized at
              emission)
``follower``  RevocationFollower: snapshot → follow → gap fill, never silently behind
``sources``   where events come from: the HTTP feed, a Redis stream, an in-process bus
              (imported by path: it loads httpx)
``acks``      AckReporter: tells the identity service what this verifier has applied
"""

from __future__ import annotations

from tessera.verifier.revocation.follower import (
    EventSource,
    ResyncRequired,
    RevocationFollower,
    SourceUnavailable,
)
from tessera.verifier.revocation.history import RevocationHistory
from tessera.verifier.revocation.state import EventKind, RevocationState

__all__ = [
    "EventKind",
    "EventSource",
    "ResyncRequired",
    "RevocationFollower",
    "RevocationHistory",
    "RevocationState",
    "SourceUnavailable",
]
