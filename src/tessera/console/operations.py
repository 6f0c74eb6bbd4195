"""Revocations the console performs: a session, a refresh family, a user, a tenant.

Each goes through ``application.admin`` (and so ``application.lifecycle``): the state change,
its outbox event(s) and its audit record commit together and verifiers learn of it from
the bus (DESIGN §3). ``actor`` is the administrator's user id; ``reason`` is ``console``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tessera.application import admin
from tessera.identity.compose import Identity

__all__ = ["REASON", "Outcome", "RevokeKind", "revoke"]

REASON = "console"
"""The ``reason`` recorded on everything the console revokes."""


class RevokeKind(StrEnum):
    SESSION = "session"
    FAMILY = "family"
    USER = "user"
    TENANT = "tenant"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: RevokeKind
    target: str
    ended: int
    """Sessions (families, for a family) this call ended; 0 when already ended."""


async def revoke(identity: Identity, kind: RevokeKind, target: str, *, actor: str) -> Outcome:
    """Raises ``admin.AdminError`` for an unknown family."""
    if kind is RevokeKind.SESSION:
        ended = await admin.revoke(identity.admin, sid=target, reason=REASON, actor=actor)
    elif kind is RevokeKind.USER:
        ended = await admin.revoke(identity.admin, user_id=target, reason=REASON, actor=actor)
    elif kind is RevokeKind.FAMILY:
        ended = int(await admin.revoke_family(identity.admin, target, reason=REASON, actor=actor))
    else:
        ended = await admin.revoke_tenant(identity.admin, target, reason=REASON, actor=actor)
    return Outcome(kind, target, ended)
