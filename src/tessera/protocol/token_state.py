"""Is an access token we issued still good? Signature and claims, the DPoP binding of
how it is presented (RFC 9449 §7), then live state: revoked ``jti``, ended session,
revoked refresh family, stale session version, a user, client or tenant no longer in good
standing (``standing``), and for an impersonation the administrator's session.

Asked with ``fast`` (introspection), the live state comes from a ``RevocationView`` — the
in-memory revocation state verifiers keep — when that view is provably current, instead
of the store: the same events end the same tokens (``identity.revocation_mirror``)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Protocol

from tessera.application.standing import NotInGoodStanding, check_tenant, check_user, client_tenant
from tessera.core.clock import Clock
from tessera.core.refresh import RefreshFamily
from tessera.core.revocation import RevocationKind
from tessera.keys import TokenInvalid
from tessera.protocol.clients import ClientDirectory
from tessera.protocol.rfc9068.access_token import AccessTokenIssuer
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

    def check(self, claims: dict[str, Any], *, tenant: str) -> bool:
        """Raise ``TokenInactive`` if an event revokes the token; ``False``: the view
        cannot tell (ask the store), ``True``: nothing revokes it."""


def _family_revoked(claims: dict[str, Any], families: list[RefreshFamily]) -> bool:
    """Access tokens carry no family id: a revoked refresh family covers the tokens of its
    session and client issued at or before the revocation (RFC 7009 §2.1: revoking a
    refresh token SHOULD invalidate the access tokens of the same grant). ``iat`` has
    one-second grain, so this fails closed for a token issued in the revocation's second."""
    iat = claims.get("iat")
    return isinstance(iat, int | float) and any(
        f.revoked_at is not None and f.client_id == claims.get("client_id")
        and iat <= f.revoked_at for f in families)


def _certificate_fits(claims: dict[str, Any], x5t: str | None) -> bool:
    """RFC 8705 §3: a certificate-bound token only over a connection presenting that
    certificate (an unbound token may come with any certificate or none)."""
    cnf = claims.get("cnf")
    bound = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
    if bound is None:
        return True
    return isinstance(bound, str) and x5t is not None and hmac.compare_digest(bound, x5t)


def _binding_fits(claims: dict[str, Any], jkt: str | None) -> bool:
    cnf = claims.get("cnf")
    bound = cnf.get("jkt") if isinstance(cnf, dict) else None
    if bound is None or jkt is None:
        return bound is None and jkt is None
    return isinstance(bound, str) and hmac.compare_digest(bound, jkt)


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
                    x5t: str | None = None) -> dict[str, Any]:
        """The token's claims if it is active now; raise ``TokenInactive`` otherwise.

        ``jkt``: the thumbprint of the DPoP proof's key the token was presented with (None:
        presented as Bearer). A DPoP-bound token is active only with its key, an unbound
        one only without a proof. ``any_binding`` skips that rule, for callers that ask
        about a token rather than present it (introspection, token exchange). ``fast``:
        the revocation view may stand in for the store (module docstring). ``x5t``: the
        thumbprint of the client certificate of the connection (RFC 8705 §3)."""
        if len(token) > 8192:
            raise TokenInactive("oversized")
        now = self.clock.now()
        try:
            claims = await self.tokens.resolve(token, now=now, leeway=self.leeway,
                                               audience=audience)
        except TokenInvalid as exc:
            raise TokenInactive(exc.reason) from None
        if not any_binding and not _binding_fits(claims, jkt):
            raise TokenInactive("dpop_binding")
        if not any_binding and not _certificate_fits(claims, x5t):
            raise TokenInactive("certificate_binding")
        client = await self.clients.get(str(claims.get("client_id", "")))
        if client is None or client.disabled:
            raise TokenInactive("client_disabled")
        view = self.view
        if (fast and view is not None and view.usable(now)
                and view.check(claims, tenant=client_tenant(client))):
            return claims
        async with self.store.unit_of_work(read_only=True) as uow:
            if await uow.revocations.is_token_revoked(str(claims.get("jti", ""))):
                raise TokenInactive("token_revoked")
            await self._check_grains(uow, claims, client_tenant(client))
            try:
                await check_tenant(uow, str(claims.get("tid") or client_tenant(client)))
                sid = claims.get("sid")
                if sid is not None:
                    await self._check_session(uow, claims, str(sid))
            except NotInGoodStanding as exc:
                raise TokenInactive(exc.reason) from None
        return claims

    @staticmethod
    async def _check_grains(uow: UnitOfWork, claims: dict[str, Any], tenant: str) -> None:
        """User-, tenant- and client-wide revocations (what verifiers apply from the same
        events): a token issued at or before one is revoked."""
        before = await uow.revocations.revoked_before([
            (RevocationKind.USER_REVOKED, str(claims.get("sub"))),
            (RevocationKind.TENANT_REVOKED, str(claims.get("tid") or tenant)),
            (RevocationKind.CLIENT_REVOKED, str(claims.get("client_id")))])
        iat = claims.get("iat")
        if before is not None and (not isinstance(iat, int | float) or iat <= before):
            raise TokenInactive("revoked_wholesale")

    @staticmethod
    async def _check_session(uow: UnitOfWork, claims: dict[str, Any], sid: str) -> None:
        session = await uow.sessions.get(sid)
        if session is None or not session.active:
            raise TokenInactive("session_revoked")
        if claims.get("sv") != session.sv:
            raise TokenInactive("stale_session_version")
        if _family_revoked(claims, await uow.refresh.families_for_session(sid)):
            raise TokenInactive("family_revoked")
        await check_user(uow, session.user_id, tenant_id=session.tenant_id)
        if session.actor_sid is not None:  # impersonation: the administrator's session too
            actor = await uow.sessions.get(session.actor_sid)
            if actor is None or not actor.active:
                raise TokenInactive("actor_session_revoked")
