"""Session lifecycle: revoke at each grain and bump versions, each with its outbox event.

Every function runs inside the caller's ``Transaction`` so the state change, its
revocation event and its audit record commit together (DESIGN §3).
"""

from __future__ import annotations

from tessera.application.transaction import Transaction
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.observability import events

VERIFIER_LEEWAY = 60.0
"""Verifiers may accept tokens up to 60 s past ``exp`` (DESIGN §9), so an entry must be
remembered that long after the last token it covers expires."""

__all__ = ["VERIFIER_LEEWAY", "bump_session_version", "bump_user_version",
           "end_impersonations", "publish_user_revoked", "revoke_access_token",
           "revoke_client", "revoke_family", "revoke_session", "revoke_user"]


async def revoke_family(tx: Transaction, family_id: str, *, at: float, reason: str,
                        token_ttl: float) -> bool:
    """End a refresh family. Access tokens carry no family id, so the event revokes what
    the family's session issued to its client up to ``at`` (RFC 7009 §2.1)."""
    if not await tx.uow.refresh.revoke_family(family_id, at=at, reason=reason):
        return False
    family = await tx.uow.refresh.get_family(family_id)
    assert family is not None
    tx.publish(RevocationEvent(
        RevocationKind.FAMILY_REVOKED, family_id, at, expires_at=_horizon(at, token_ttl),
        data={"sid": family.sid, "client_id": family.client_id, "before": at,
              "reason": reason}))
    return True


def _horizon(at: float, token_ttl: float) -> float:
    """When an entry stops mattering: the last covered token's expiry plus leeway."""
    return at + token_ttl + VERIFIER_LEEWAY


async def revoke_session(tx: Transaction, sid: str, *, at: float, reason: str,
                         token_ttl: float, actor: str | None = None) -> bool:
    """End a session and every refresh family in it. Its access tokens stop being
    accepted wherever the session's state is checked (introspection, verifiers)."""
    session = await tx.uow.sessions.get(sid)
    if session is None or not await tx.uow.sessions.revoke(sid, at=at, reason=reason):
        return False
    for family in await tx.uow.refresh.families_for_session(sid):
        await revoke_family(tx, family.family_id, at=at, reason=reason, token_ttl=token_ttl)
    tx.publish(RevocationEvent(RevocationKind.SESSION_REVOKED, sid, at,
                                     expires_at=_horizon(at, token_ttl),
                                     data={"sub": session.user_id, "reason": reason}))
    tx.audit(events.SESSION_REVOKED, sid=sid, user_id=session.user_id,
             tenant_id=session.tenant_id, reason=reason, actor=actor)
    await end_impersonations(tx, at=at, sid=sid, reason="actor_session_ended",
                             token_ttl=token_ttl)
    return True


async def end_impersonations(tx: Transaction, *, at: float, reason: str, token_ttl: float,
                             sid: str | None = None, jti: str | None = None) -> int:
    """Revoke the impersonation sessions opened under the administrator's session ``sid``
    or with the administrator's token ``jti``: an impersonation never outlives what it was
    obtained with. Returns how many ended."""
    count = 0
    for child in await tx.uow.sessions.acting_under(sid=sid, jti=jti):
        count += await revoke_session(tx, child.sid, at=at, reason=reason,
                                      token_ttl=token_ttl, actor="system")
    return count


async def revoke_client(tx: Transaction, client_id: str, *, at: float, reason: str,
                        token_ttl: float, families: bool = True) -> int:
    """Client-wide revocation: one ``client.revoked`` event (every token issued to the
    client until ``at`` is refused everywhere) and, with ``families``, the end of every
    refresh family of the client. Returns the families ended."""
    ended = 0
    if families:
        for family in await tx.uow.refresh.active_families_for_client(client_id):
            ended += await revoke_family(tx, family.family_id, at=at, reason=reason,
                                         token_ttl=token_ttl)
    tx.publish(RevocationEvent(RevocationKind.CLIENT_REVOKED, client_id, at,
                               expires_at=_horizon(at, token_ttl),
                               data={"before": at, "reason": reason}))
    return ended


async def revoke_user(tx: Transaction, user_id: str, *, at: float, reason: str,
                      token_ttl: float, actor: str | None = None) -> int:
    """End all of a user's sessions; returns how many were active."""
    count = 0
    for session in await tx.uow.sessions.active_for_user(user_id):
        count += await revoke_session(tx, session.sid, at=at, reason=reason,
                                      token_ttl=token_ttl, actor=actor)
    await publish_user_revoked(tx, user_id, at=at, reason=reason, token_ttl=token_ttl)
    return count


async def publish_user_revoked(tx: Transaction, user_id: str, *, at: float, reason: str,
                               token_ttl: float) -> None:
    """User-wide revocation: every token of the user issued until ``at`` is refused."""
    tx.publish(RevocationEvent(RevocationKind.USER_REVOKED, user_id, at,
                               expires_at=_horizon(at, token_ttl),
                               data={"before": at, "reason": reason}))


async def revoke_access_token(tx: Transaction, jti: str, *, at: float, expires_at: float,
                              client_id: str, token_digest: str) -> None:
    tx.publish(RevocationEvent(RevocationKind.TOKEN_REVOKED, jti, at,
                                     expires_at=expires_at + VERIFIER_LEEWAY, data={}))
    tx.audit(events.TOKEN_REVOKED, client_id=client_id, token_hash=token_digest, jti=jti,
             token_type="access_token")


async def bump_session_version(tx: Transaction, sid: str, *, at: float, reason: str,
                               token_ttl: float, actor: str | None = None) -> int | None:
    """Make every token carrying an older ``sv`` stale; returns the new version."""
    session = await tx.uow.sessions.get(sid)
    if session is None or not session.active:
        return None
    sv = await tx.uow.sessions.bump_version(sid)
    assert sv is not None
    tx.publish(RevocationEvent(RevocationKind.SESSION_VERSION_BUMPED, sid, at,
                                     expires_at=_horizon(at, token_ttl),
                                     data={"sv": sv, "sub": session.user_id, "reason": reason}))
    tx.audit(events.SESSION_VERSION_BUMPED, sid=sid, user_id=session.user_id,
             tenant_id=session.tenant_id, sv=sv, reason=reason, actor=actor)
    # the administrator's tokens of this session are stale now: so is what they obtained
    await end_impersonations(tx, at=at, sid=sid, reason="actor_session_bumped",
                             token_ttl=token_ttl)
    return sv


async def bump_user_version(tx: Transaction, user_id: str, *, at: float, reason: str,
                            token_ttl: float, actor: str | None = None) -> int:
    """Bump every active session of a user (role change, password reset)."""
    count = 0
    for session in await tx.uow.sessions.active_for_user(user_id):
        if await bump_session_version(tx, session.sid, at=at, reason=reason,
                                      token_ttl=token_ttl, actor=actor) is not None:
            count += 1
    return count
