"""Is an access token we issued still good? The one RFC 9068 validator
(``protocol.rfc9068.validator``, also the SDK's) decides signature, claims, the binding of
how it is presented (RFC 9449 §7, RFC 8705 §3) and revocation — over the store's rows
(``rfc9068.revocation``) or the in-memory view —; then what only the identity service
knows: a client, user or tenant no longer in good standing (``standing``), and for an
impersonation the administrator's session.

Asked with ``fast`` (introspection), the live state comes from a ``RevocationView`` — the
in-memory revocation state verifiers keep — when that view is provably current, instead
of the store: the same events end the same tokens (``identity.revocation_mirror``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tessera.application.standing import NotInGoodStanding, check_tenant, check_user
from tessera.core.clock import Clock
from tessera.core.refresh import RefreshFamily, RefreshToken
from tessera.core.secrets import token_hash
from tessera.core.sessions import Session
from tessera.protocol.clients import ClientDirectory
from tessera.protocol.rfc9068.access_token import AccessTokenIssuer
from tessera.protocol.rfc9068.revocation import store_facts
from tessera.protocol.rfc9068.token import TokenRejected, VerifiedToken
from tessera.protocol.rfc9068.validator import check_binding, check_revocation
from tessera.store.ports import Store, UnitOfWork

__all__ = ["AccessTokenState", "RevocationView", "TokenInactive"]


class TokenInactive(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RevocationView(Protocol):
    """Live token state held in memory, fed by the committed revocation events."""

    def usable(self, now: float) -> bool:
        """True only while the view provably holds every event that matters now."""

    def check(self, token: VerifiedToken) -> None:
        """Raise ``TokenRejected`` if an event revokes the token (``validator
        .check_revocation`` over the view's state)."""


@dataclass(frozen=True, slots=True)
class AccessTokenState:
    tokens: AccessTokenIssuer
    store: Store
    clients: ClientDirectory
    clock: Clock
    leeway: float
    view: RevocationView | None = None

    async def check(self, token: str, *, audience: str | None = None, jkt: str | None = None,
                    any_binding: bool = False, fast: bool = False,
                    x5t: str | None = None) -> VerifiedToken:
        """The token, typed (``VerifiedToken``: read ``user_id``, ``tenant_id``,
        ``scopes``…, not raw claims), if it is active now; raise ``TokenInactive``
        otherwise.

        ``jkt``: the thumbprint of the DPoP proof's key the token was presented with (None:
        presented as Bearer). A DPoP-bound token is active only with its key, an unbound
        one only without a proof. ``any_binding`` skips that rule, for callers that ask
        about a token rather than present it (introspection, token exchange). ``fast``:
        the revocation view may stand in for the store (module docstring). ``x5t``: the
        thumbprint of the client certificate of the connection (RFC 8705 §3)."""
        now = self.clock.now()
        try:
            verified = await self.tokens.resolve(token, now=now, leeway=self.leeway,
                                                 audience=audience)
            if not any_binding:
                check_binding(verified, jkt=jkt, x5t=x5t)
        except TokenRejected as exc:
            raise TokenInactive(exc.reason.value) from None
        client = await self.clients.get(verified.client_id)
        if client is None or client.disabled:
            raise TokenInactive("client_disabled")
        view = self.view
        try:
            if fast and view is not None and view.usable(now):
                view.check(verified)
                return verified
            async with self.store.unit_of_work(read_only=True) as uow:
                facts, session = await store_facts(uow, verified)
                check_revocation(verified, facts)
                await check_tenant(uow, verified.tid)
                if session is not None:
                    await self._check_people(uow, session)
        except TokenRejected as exc:
            raise TokenInactive(exc.reason.value) from None
        except NotInGoodStanding as exc:
            raise TokenInactive(exc.reason) from None
        return verified

    @staticmethod
    async def _check_people(uow: UnitOfWork, session: Session) -> None:
        """The user in good standing, and for an impersonation the administrator's
        session still active."""
        await check_user(uow, session.user_id, tenant_id=session.tenant_id)
        if session.actor_sid is not None:
            actor = await uow.sessions.get(session.actor_sid)
            if actor is None or not actor.active:
                raise TokenInactive("actor_session_revoked")


@dataclass(frozen=True, slots=True)
class LiveRefresh:
    """A refresh token that can still be used, with its family and session."""

    token: RefreshToken
    family: RefreshFamily
    session: Session


async def live_refresh(uow: UnitOfWork, token: str, now: float) -> LiveRefresh | None:
    """``token``'s chain if it is live: known, not rotated, not expired, its family not
    revoked and its session active; else None. The one rule introspection (RFC 7662) and
    token exchange (RFC 8693 subject tokens) share; the client, tenant, standing and
    DPoP checks that follow are each caller's."""
    row = await uow.refresh.get_token(token_hash(token))
    family = await uow.refresh.get_family(row.family_id) if row else None
    session = await uow.sessions.get(family.sid) if family else None
    if (row is None or family is None or session is None or not session.active
            or family.revoked_at is not None or row.rotated_at is not None
            or now >= row.expires_at):
        return None
    return LiveRefresh(row, family, session)
