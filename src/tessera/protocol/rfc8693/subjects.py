"""Subject and actor tokens (RFC 8693 §3): what each token type says about who it is for.

- access token / JWT: an active access token we issued (signature, revocation, session,
  session version: ``AccessTokenState``).
- refresh token: the family head, presented by the client it was issued to, in an active
  session; the exchanged token's life is still capped by the access-token lifetime.
- ID token: one we issued to this client (``aud``), unexpired, of an active session;
  an identity assertion only, so it carries no scope.

Every one must belong to the requesting client's tenant, its user must be in good
standing (``standing``), and an access token must be addressed to the client
(``check_presenter``) and, when DPoP-bound, come with a proof of its key
(``check_binding``, RFC 9449 §7).
"""

from __future__ import annotations

from typing import Any

from tessera.application.standing import NotInGoodStanding, check_user, client_tenant
from tessera.core.clients import Client
from tessera.core.clock import Clock
from tessera.keys import RingHolder, TokenInvalid
from tessera.protocol.errors import InvalidGrant, InvalidRequest
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.protocol.rfc9068.validator import check_possession
from tessera.protocol.token_state import AccessTokenState, TokenInactive, live_refresh
from tessera.store.ports import Store

__all__ = ["TOKEN_TYPE_ACCESS_TOKEN", "TOKEN_TYPE_ID_TOKEN", "TOKEN_TYPE_JWT",
           "TOKEN_TYPE_REFRESH_TOKEN", "NotPresentable", "SubjectLoader", "check_binding",
           "check_presenter"]

TOKEN_TYPE_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPE_REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"
TOKEN_TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
SUBJECT_TYPES = frozenset({TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_REFRESH_TOKEN,
                           TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_JWT})


class NotPresentable(Exception):
    """The token is active, but not for the client presenting it (or not without a
    proof of its key)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _audiences(claims: dict[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    return tuple(a for a in aud if isinstance(a, str)) if isinstance(aud, list) else ()


def check_binding(claims: dict[str, Any], jkt: str | None) -> None:
    """RFC 9449 §7: a DPoP-bound token (``cnf.jkt``) is exchanged only with a valid proof
    of the same key in the exchange request (the issued token is bound to it, so it stays
    bound); possession of the token alone is not enough."""
    cnf = claims.get("cnf")
    bound = cnf.get("jkt") if isinstance(cnf, dict) else None
    try:
        check_possession(bound if isinstance(bound, str) or bound is None else "", jkt)
    except TokenRejected:
        if jkt is None:
            raise NotPresentable("it is DPoP-bound: send a DPoP proof of its key",
                                 "dpop_proof_missing") from None
        raise NotPresentable("the DPoP proof's key is not the token's",
                             "dpop_key_mismatch") from None


def check_presenter(claims: dict[str, Any], client: Client, *, actor: bool) -> None:
    """Who may present an access token to the exchange:

    - a subject token: a client named in its ``aud`` (by client_id), the client it was
      issued to, or a client configured to trust one of its audiences
      (``Client.subject_audiences``: the resource a gateway fronts);
    - an actor token: the client it was issued to, or one named in its ``aud``.
    A token stolen from its audience is then useless to another client."""
    audiences = _audiences(claims)
    if claims.get("client_id") == client.client_id or client.client_id in audiences:
        return
    if not actor and any(aud in client.subject_audiences for aud in audiences):
        return
    raise NotPresentable("it is not addressed to this client",
                         "actor_not_for_client" if actor else "subject_not_for_client")


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
        """The token's claims if it is active and ``client`` may present it; otherwise
        ``InvalidGrant``. ``jkt``: the key of the request's DPoP proof, which a DPoP-bound
        token needs (RFC 9449 §7). ``name`` is ``subject_token`` or ``actor_token``."""
        if token_type not in SUBJECT_TYPES:
            raise InvalidRequest(f"unsupported {name}_type")
        try:
            if token_type == TOKEN_TYPE_REFRESH_TOKEN:
                claims = await self._refresh(token, client, jkt)
            elif token_type == TOKEN_TYPE_ID_TOKEN:
                claims = await self._id_token(token, client)
            else:
                verified = await self._state.check(token, any_binding=True)
                claims = dict(verified.claims)  # the issued token's claims derive from them
                check_binding(claims, jkt)
                check_presenter(claims, client, actor=name == "actor_token")
            if claims.get("tid") != client_tenant(client):
                raise TokenInactive("another_tenant")
        except TokenInactive as exc:
            raise InvalidGrant(f"the {name} is not active", detail=exc.reason) from None
        except NotPresentable as exc:
            raise InvalidGrant(f"the {name} cannot be exchanged by this client: {exc}",
                               detail=exc.reason) from None
        return claims

    async def roles_of(self, user_id: str) -> frozenset[str]:
        """The roles ``user_id`` holds now (privileged scopes are re-checked at use)."""
        async with self._store.unit_of_work(read_only=True) as uow:
            return await uow.roles.of_user(user_id)

    async def _refresh(self, token: str, client: Client, jkt: str | None) -> dict[str, Any]:
        now = self._clock.now()
        async with self._store.unit_of_work(read_only=True) as uow:
            live = await live_refresh(uow, token, now)
            if live is None:
                raise TokenInactive("refresh_token_inactive")
            family, session = live.family, live.session
            if family.client_id != client.client_id:
                raise TokenInactive("refresh_token_of_another_client")
            try:
                await check_user(uow, family.user_id, tenant_id=family.tenant_id)
            except NotInGoodStanding as exc:
                raise TokenInactive(exc.reason) from None
        try:
            check_possession(family.jkt, jkt)  # RFC 9449 §5
        except TokenRejected:
            raise TokenInactive("refresh_token_dpop_binding") from None
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
            if session is not None:
                try:
                    await check_user(uow, session.user_id, tenant_id=session.tenant_id)
                except NotInGoodStanding as exc:
                    raise TokenInactive(exc.reason) from None
        if session is None or not session.active or session.user_id != claims.get("sub"):
            raise TokenInactive("session_revoked")
        return {"sub": session.user_id, "sid": session.sid, "sv": session.sv,
                "tid": session.tenant_id, "acr": session.acr, "amr": list(session.amr),
                "auth_time": int(session.auth_time), "scope": "", "exp": claims["exp"],
                "may_act": claims.get("may_act")}
