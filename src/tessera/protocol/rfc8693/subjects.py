"""Subject and actor tokens (RFC 8693 §3): what each token type says about who it is for.

- access token / JWT: an active access token we issued (signature, revocation, session,
  session version: ``AccessTokenState``).
- refresh token: the family head, presented by the client it was issued to, in an active
  session; the exchanged token's life is still capped by the access-token lifetime.
- ID token: one we issued to this client (``aud``), unexpired, of an active session;
  an identity assertion only, so it carries no scope.
"""

from __future__ import annotations

from typing import Any

from tessera.core.clients import Client
from tessera.core.clock import Clock
from tessera.core.secrets import token_hash
from tessera.keys import RingHolder, TokenInvalid
from tessera.protocol.errors import InvalidGrant, InvalidRequest
from tessera.protocol.token_state import AccessTokenState, TokenInactive
from tessera.store.ports import Store

__all__ = ["TOKEN_TYPE_ACCESS_TOKEN", "TOKEN_TYPE_ID_TOKEN", "TOKEN_TYPE_JWT",
           "TOKEN_TYPE_REFRESH_TOKEN", "SubjectLoader"]

TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"
TOKEN_TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
SUBJECT_TYPES = frozenset({TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_REFRESH_TOKEN,
                           TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_JWT})


class SubjectLoader:
    def __init__(self, state: AccessTokenState, store: Store, keys: RingHolder, clock: Clock,
                 *, issuer: str, access_ttl: int, leeway: float) -> None:
        self._state = state
        self._store = store
        self._keys = keys
        self._clock = clock
        self._issuer = issuer
        self._ttl = access_ttl
        self._leeway = leeway

    async def load(self, token: str, token_type: str | None, client: Client,
                   name: str, *, jkt: str | None = None) -> dict[str, Any]:
        """The token's claims if it is active; ``InvalidGrant`` otherwise. ``jkt``: the
        key of the request's DPoP proof, which a DPoP-bound refresh token needs."""
        if token_type not in SUBJECT_TYPES:
            raise InvalidRequest(f"unsupported {name}_type")
        try:
            if token_type == TOKEN_TYPE_REFRESH_TOKEN:
                return await self._refresh(token, client, jkt)
            if token_type == TOKEN_TYPE_ID_TOKEN:
                return await self._id_token(token, client)
            return await self._state.check(token, any_binding=True)
        except TokenInactive as exc:
            raise InvalidGrant(f"the {name} is not active", detail=exc.reason) from None

    async def _refresh(self, token: str, client: Client, jkt: str | None) -> dict[str, Any]:
        now = self._clock.now()
        async with self._store.unit_of_work(read_only=True) as uow:
            row = await uow.refresh.get_token(token_hash(token))
            family = await uow.refresh.get_family(row.family_id) if row else None
            session = await uow.sessions.get(family.sid) if family else None
        if (row is None or family is None or session is None or not session.active
                or family.revoked_at is not None or row.rotated_at is not None
                or now >= row.expires_at):
            raise TokenInactive("refresh_token_inactive")
        if family.client_id != client.client_id:
            raise TokenInactive("refresh_token_of_another_client")
        if family.jkt is not None and family.jkt != jkt:  # RFC 9449 §5
            raise TokenInactive("refresh_token_dpop_binding")
        return {"sub": family.user_id, "sid": session.sid, "sv": session.sv,
                "tid": family.tenant_id, "acr": session.acr, "amr": list(session.amr),
                "auth_time": int(session.auth_time), "scope": " ".join(sorted(family.scope)),
                "exp": int(now) + self._ttl}

    async def _id_token(self, token: str, client: Client) -> dict[str, Any]:
        try:
            claims = self._keys.ring.verify(token, typ="JWT", issuer=self._issuer,
                                            audience=client.client_id,
                                            now=self._clock.now(), leeway=self._leeway)
        except TokenInvalid as exc:
            raise TokenInactive(exc.reason) from None
        sid = claims.get("sid")
        async with self._store.unit_of_work(read_only=True) as uow:
            session = await uow.sessions.get(str(sid)) if isinstance(sid, str) else None
        if session is None or not session.active or session.user_id != claims.get("sub"):
            raise TokenInactive("session_revoked")
        return {"sub": session.user_id, "sid": session.sid, "sv": session.sv,
                "tid": session.tenant_id, "acr": session.acr, "amr": list(session.amr),
                "auth_time": int(session.auth_time), "scope": "", "exp": claims["exp"],
                "may_act": claims.get("may_act")}
