"""Is an access token we issued still good? Signature and claims, then live state:
revoked ``jti``, ended session, revoked refresh family, stale session version, disabled
user or client."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class AccessTokenState:
    tokens: AccessTokenIssuer
    store: Store
    clients: ClientDirectory
    clock: Clock
    leeway: float

    async def check(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """The token's claims if it is active now; raise ``TokenInactive`` otherwise."""
        if len(token) > 8192:
            raise TokenInactive("oversized")
        try:
            claims = self.tokens.verify(token, now=self.clock.now(), leeway=self.leeway,
                                        audience=audience)
        except TokenInvalid as exc:
            raise TokenInactive(exc.reason) from None
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
