"""RP-Initiated Logout 1.0 (``end_session_endpoint``).

A logout ends the session and every refresh family in it, with outbox events so
verifiers drop its tokens. ``post_logout_redirect_uri`` must be registered exactly for the
client named by ``client_id`` or the ``id_token_hint`` audience (§2, §3).
A valid ``id_token_hint`` identifies the session; without one the user confirms.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from tessera.application import lifecycle
from tessera.application.ports import AuditTrail
from tessera.application.transaction import transaction
from tessera.core.clock import Clock
from tessera.keys import TokenInvalid
from tessera.observability import events
from tessera.protocol.clients import ClientDirectory
from tessera.protocol.errors import InvalidRequest
from tessera.protocol.http import Params
from tessera.protocol.oidc.id_token import IdTokenIssuer
from tessera.store.ports import Store

__all__ = ["LogoutEndpoint", "LogoutRequest"]


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    sid: str | None
    """The session named by a verified ``id_token_hint``."""
    redirect_to: str | None
    """Where to send the browser afterwards (already checked against registration)."""


class LogoutEndpoint:
    def __init__(self, store: Store, clients: ClientDirectory, id_tokens: IdTokenIssuer,
                 audit: AuditTrail, clock: Clock, *, leeway: float, token_ttl: float) -> None:
        self._store = store
        self._clients = clients
        self._id_tokens = id_tokens
        self._audit = audit
        self._clock = clock
        self._leeway = leeway
        self._token_ttl = token_ttl

    async def parse(self, params: Params) -> LogoutRequest:
        sid = None
        client_id = params.get("client_id")
        hint = params.get("id_token_hint")
        if hint is not None:
            try:
                claims = self._id_tokens.verify_hint(hint, now=self._clock.now(),
                                                     leeway=self._leeway)
            except TokenInvalid:
                raise InvalidRequest("id_token_hint is not valid") from None
            aud = claims.get("aud")
            hint_client = aud if isinstance(aud, str) else None
            if client_id is not None and hint_client is not None and client_id != hint_client:
                raise InvalidRequest("client_id does not match id_token_hint")
            client_id = client_id or hint_client
            sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        redirect = params.get("post_logout_redirect_uri")
        if redirect is not None:
            client = await self._clients.get(client_id) if client_id else None
            if client is None or redirect not in client.post_logout_redirect_uris:
                raise InvalidRequest("post_logout_redirect_uri is not registered")
            state = params.get("state")
            if state is not None:
                sep = "&" if urlsplit(redirect).query else "?"
                redirect = f"{redirect}{sep}{urlencode({'state': state})}"
        return LogoutRequest(sid=sid, redirect_to=redirect)

    async def end_session(self, sid: str, *, actor: str | None = None) -> bool:
        """End the session; True if it was active."""
        async with transaction(self._store, self._audit) as tx:
            ended = await lifecycle.revoke_session(tx, sid, at=self._clock.now(),
                                                   reason="logout", token_ttl=self._token_ttl,
                                                   actor=actor)
            if ended:
                tx.audit(events.SESSION_LOGOUT, sid=sid, actor=actor)
        return ended
