"""The identity service's store-backed ``RevocationSource``: what the store knows about one
access token, read in one read-only unit of work, for ``validator.check_revocation`` — the
same rule the verifier SDK applies to its in-memory state.

A session that is gone or no longer active counts as revoked; the store has each session's
current version; a refresh family of the token's session and client revoked at or after
its ``iat`` ends it; user-, tenant- and client-wide revocations are read from the
revocation log (the events verifiers apply).
"""

from __future__ import annotations

from tessera.core.revocation import RevocationKind
from tessera.core.sessions import Session
from tessera.protocol.rfc9068.token import VerifiedToken
from tessera.protocol.rfc9068.validator import (
    NO_GRAINS,
    NOTHING_KNOWN,
    Grain,
    GrainFacts,
    RevocationFacts,
    SessionFacts,
)
from tessera.store.ports import UnitOfWork

__all__ = ["store_facts"]

_KINDS = {Grain.USER: RevocationKind.USER_REVOKED, Grain.TENANT: RevocationKind.TENANT_REVOKED,
          Grain.CLIENT: RevocationKind.CLIENT_REVOKED}


async def store_facts(uow: UnitOfWork, token: VerifiedToken) -> tuple[RevocationFacts,
                                                                        Session | None]:
    """The facts ``check_revocation`` asks about ``token``, and its session (``None`` for
    a token without ``sid``, or when the session is gone)."""
    jti_revoked = await uow.revocations.is_token_revoked(token.jti)
    session = None
    session_facts = NOTHING_KNOWN
    if token.sid is not None:
        session = await uow.sessions.get(token.sid)
        if session is None or not session.active:
            session_facts = SessionFacts(revoked=True)
        else:
            revoked = [f.revoked_at for f in await uow.refresh.families_for_session(token.sid)
                       if f.revoked_at is not None and f.client_id == token.client_id]
            session_facts = SessionFacts(False, max(revoked, default=None), session.sv)
    keys = {Grain.USER: token.sub, Grain.TENANT: token.tid, Grain.CLIENT: token.client_id}
    grain_facts = NO_GRAINS
    if await uow.revocations.revoked_before([(_KINDS[g], k) for g, k in keys.items()]) \
            is not None:  # rare: then find which grain it was, for the reason
        grain_facts = GrainFacts(*[
            await uow.revocations.revoked_before([(_KINDS[grain], key)])
            for grain, key in keys.items()])
    return RevocationFacts(jti_revoked, session_facts, grain_facts), session
