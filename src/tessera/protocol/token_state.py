"""Is an access token we issued still good? Signature and claims, the DPoP binding of
how it is presented (RFC 9449 §7), then live state: revoked ``jti``, ended session,
revoked refresh family, stale session version, disabled user or client."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from tessera.core.clock import Clock
from tessera.core.refresh import RefreshFamily
from tessera.keys import TokenInvalid
from tessera.protocol.clients import ClientDirectory
from tessera.protocol.rfc9068.access_token import AccessTokenIssuer
from tessera.store.ports import Store

__all__ = ["AccessTokenState", "TokenInactive"]


class TokenInactive(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _family_revoked(claims: dict[str, Any], families: list[RefreshFamily]) -> bool:
    """Access tokens carry no family id: a revoked refresh family covers the tokens of its
    session and client issued at or before the revocation (RFC 7009 §2.1: revoking a
    refresh token SHOULD invalidate the access tokens of the same grant). ``iat`` has
    one-second grain, so this fails closed for a token issued in the revocation's second."""
    iat = claims.get("iat")
    return isinstance(iat, int | float) and any(
        f.revoked_at is not None and f.client_id == claims.get("client_id")
        and iat <= f.revoked_at for f in families)


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

    async def check(self, token: str, *, audience: str | None = None, jkt: str | None = None,
                    any_binding: bool = False) -> dict[str, Any]:
        """The token's claims if it is active now; raise ``TokenInactive`` otherwise.

        ``jkt``: the thumbprint of the DPoP proof's key the token was presented with (None:
        presented as Bearer). A DPoP-bound token is active only with its key, an unbound
        one only without a proof. ``any_binding`` skips that rule, for callers that ask
        about a token rather than present it (introspection, token exchange)."""
        if len(token) > 8192:
            raise TokenInactive("oversized")
        try:
            claims = self.tokens.verify(token, now=self.clock.now(), leeway=self.leeway,
                                        audience=audience)
        except TokenInvalid as exc:
            raise TokenInactive(exc.reason) from None
        if not any_binding and not _binding_fits(claims, jkt):
            raise TokenInactive("dpop_binding")
        client = await self.clients.get(str(claims.get("client_id", "")))
        if client is None or client.disabled:
            raise TokenInactive("client_disabled")
        async with self.store.unit_of_work(read_only=True) as uow:
            if await uow.revocations.is_token_revoked(str(claims.get("jti", ""))):
                raise TokenInactive("token_revoked")
            sid = claims.get("sid")
            if sid is not None:
                session = await uow.sessions.get(str(sid))
                if session is None or not session.active:
                    raise TokenInactive("session_revoked")
                if claims.get("sv") != session.sv:
                    raise TokenInactive("stale_session_version")
                if _family_revoked(claims, await uow.refresh.families_for_session(str(sid))):
                    raise TokenInactive("family_revoked")
                user = await uow.users.get(session.user_id)
                if user is None or user.disabled:
                    raise TokenInactive("user_disabled")
        return claims
