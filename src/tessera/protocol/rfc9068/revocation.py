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
from tessera.protocol.rfc9068.validator import Grain, RevocationFacts
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
    sid_revoked, sv, family_before = False, None, None
    if token.sid is not None:
        session = await uow.sessions.get(token.sid)
        sid_revoked = session is None or not session.active
        if session is not None:
            sv = session.sv
            revoked = [f.revoked_at for f in await uow.refresh.families_for_session(token.sid)
                       if f.revoked_at is not None and f.client_id == token.client_id]
            family_before = max(revoked, default=None)
    keys = {Grain.USER: token.sub, Grain.TENANT: token.tid, Grain.CLIENT: token.client_id}
    before: dict[Grain, float] = {}
    if await uow.revocations.revoked_before([(_KINDS[g], k) for g, k in keys.items()]) \
            is not None:  # rare: then find which grain it was, for the reason
        for grain, key in keys.items():
            at = await uow.revocations.revoked_before([(_KINDS[grain], key)])
            if at is not None:
                before[grain] = at
    return RevocationFacts(jti_revoked, sid_revoked, sv, family_before, before), session
