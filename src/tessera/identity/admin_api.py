"""The admin HTTP API: ``POST /admin/sessions`` (``action`` = ``bump_version`` | ``revoke``,
with ``sid`` or ``user_id``).

Who may call it, checked at every call, never from the token alone:

1. a bearer access token for this issuer, active now (``AccessTokenState``: signature,
   revocation, session, version, standing), carrying ``tessera:admin``;
2. its holder's authority read from the store now (``Reach``): a user must hold
   ``tenant-admin`` (their own tenant) or ``platform-admin`` (every tenant) *now*; a
   service's own token (client credentials) must still belong to an enabled client
   registered with ``tessera:admin``, and reaches the client's tenant only;
3. the target (a session, a user) must lie in that reach. One outside it is answered
   exactly like an unknown one (``{"sessions": 0}``): a tenant learns nothing of another.

Refusals: 401 ``invalid_token`` (no or inactive token), 403 ``insufficient_scope`` (no
scope or no role), 400 ``invalid_request`` (bad parameters), 503 when the store is down.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tessera.application import admin
from tessera.application.standing import NotInGoodStanding, client_tenant, reach_of
from tessera.core.roles import ADMIN_SCOPE, TENANT_ADMIN, Reach
from tessera.identity.compose import Identity
from tessera.identity.http import read_request, send_error
from tessera.protocol.errors import (
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    TemporarilyUnavailable,
)
from tessera.protocol.http import OAuthRequest, parse_params
from tessera.protocol.oidc.userinfo import bearer_token
from tessera.protocol.rfc9068.token import VerifiedToken
from tessera.protocol.token_state import TokenInactive
from tessera.store.ports import StoreError

__all__ = ["AdminApi", "NoAuthority"]


class NoAuthority(InsufficientScope):
    """The token is fine but its holder may not administer (anything, or this)."""


def _forbidden(exc: InsufficientScope) -> Response:
    return JSONResponse({"error": "insufficient_scope", "error_description": exc.description},
                        403, headers={"www-authenticate": f'Bearer error="insufficient_scope",'
                                                          f' scope="{ADMIN_SCOPE}"',
                                      "cache-control": "no-store"})


class AdminApi:
    def __init__(self, identity: Identity) -> None:
        self._id = identity
        self._max_body = identity.settings.security.max_body_bytes

    async def caller(self, oauth: OAuthRequest) -> Reach:
        """The authority of the request's bearer token (an access token for this issuer,
        active now), or ``InvalidToken`` / ``NoAuthority``: every admin API route asks
        this first."""
        try:
            token = await self._id.token_state.check(bearer_token(oauth),
                                                     audience=self._id.settings.issuer)
        except TokenInactive as exc:
            raise InvalidToken("the access token is not active", detail=exc.reason) from None
        return await self.reach(token)

    async def reach(self, token: VerifiedToken) -> Reach:
        """The caller's authority now, or ``NoAuthority``."""
        if ADMIN_SCOPE not in token.scopes:
            raise NoAuthority(f"requires {ADMIN_SCOPE}")
        user_id = token.user_id
        if token.sid is None:  # a service's own token (client credentials): sub is the client
            client = await self._id.clients.get(user_id)
            if client is None or client.disabled or user_id != token.client_id \
                    or ADMIN_SCOPE not in client.scopes:
                raise NoAuthority(f"the client is not registered with {ADMIN_SCOPE}")
            return Reach(user_id, client_tenant(client), frozenset({TENANT_ADMIN}))
        async with self._id.store.unit_of_work(read_only=True) as uow:
            try:
                reach = await reach_of(uow, user_id)
            except NotInGoodStanding as exc:
                raise InvalidToken("the access token is not active",
                                   detail=exc.reason) from None
        if not reach.may(ADMIN_SCOPE) or reach.tenant_id != token.tenant_id:
            raise NoAuthority("requires the tenant-admin or platform-admin role")
        return reach

    async def _in_reach(self, reach: Reach, *, sid: str | None, user_id: str | None) -> bool:
        async with self._id.store.unit_of_work(read_only=True) as uow:
            if sid is not None:
                session = await uow.sessions.get(sid)
                return session is not None and reach.covers(session.tenant_id)
            user = await uow.users.get(user_id) if user_id is not None else None
            return user is not None and reach.covers(user.tenant_id)

    async def sessions(self, request: Request) -> Response:
        try:
            oauth = await read_request(request, max_body=self._max_body)
            reach = await self.caller(oauth)
            params = parse_params(oauth, max_body=self._max_body)
            action = params.require("action")
            if action not in ("bump_version", "revoke"):
                raise InvalidRequest("action must be bump_version or revoke")
            sid, user_id = params.get("sid"), params.get("user_id")
            if (sid is None) == (user_id is None):
                raise InvalidRequest("name exactly one of a session or a user")
            count = 0
            if await self._in_reach(reach, sid=sid, user_id=user_id):
                verb = admin.bump_version if action == "bump_version" else admin.revoke
                count = await verb(self._id.admin, sid=sid, user_id=user_id,
                                   reason=params.get("reason") or action, actor=reach.actor)
            return JSONResponse({"sessions": count}, headers={"cache-control": "no-store"})
        except InsufficientScope as exc:
            return _forbidden(exc)
        except admin.AdminError as exc:
            return send_error(InvalidRequest(str(exc)))
        except OAuthError as exc:
            return send_error(exc)
        except StoreError:
            return send_error(TemporarilyUnavailable("try again shortly"))
