"""Global token revocation for a subject (draft-parecki-oauth-global-token-revocation):
``POST /global-token-revocation`` with ``{"sub_id": {"format": "iss_sub", "iss": ...,
"sub": ...}}`` (or ``{"format": "opaque", "id": user_id}``) ends every session, refresh
family and token of the user: one transaction ending each session (its outbox events
drive verifiers, back-channel logout and SSF ``session-revoked``) plus a user-wide
``user.revoked`` (every access token of the user issued until now is refused).

Who may call: a bearer token with ``tessera:admin`` whose holder may administer the
user's tenant now (``AdminApi.reach``, the same rule as ``POST /admin/sessions``). A
user outside that reach is answered exactly like an unknown one: 404. Answers: 204
done, 400 malformed or unsupported subject, 401 no/inactive token, 403 no authority.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tessera.application import lifecycle
from tessera.application.transaction import transaction
from tessera.identity.admin_api import AdminApi, NoAuthority
from tessera.identity.compose import Identity
from tessera.identity.http import read_request, send_error
from tessera.observability import events
from tessera.protocol.errors import InvalidRequest, OAuthError, TemporarilyUnavailable
from tessera.store.ports import StoreError

__all__ = ["GLOBAL_REVOCATION_PATH", "GlobalRevocation", "revoke_subject"]

GLOBAL_REVOCATION_PATH = "/global-token-revocation"


class _NotFound(OAuthError):
    error, status = "not_found", 404


async def revoke_subject(identity: Identity, user_id: str, *, actor: str,
                         reason: str = "global_revocation") -> int:
    """End every session, family and token of the user; returns sessions ended. Safe to
    repeat. Also the function other paths (upstream logout) may call."""
    now = identity.clock.now()
    ttl = float(identity.settings.tokens.access_token_ttl)
    async with transaction(identity.store, identity.audit) as tx:
        user = await tx.uow.users.get(user_id)
        ended = await lifecycle.revoke_user(tx, user_id, at=now, reason=reason,
                                            token_ttl=ttl, actor=actor)
        tx.audit(events.USER_GLOBALLY_REVOKED, user_id=user_id,
                 tenant_id=user.tenant_id if user else None, actor=actor, sessions=ended,
                 reason=reason)
    return ended


class GlobalRevocation:
    def __init__(self, identity: Identity) -> None:
        self._id = identity
        self._admin = AdminApi(identity)
        self._max_body = identity.settings.security.max_body_bytes

    def _user_id(self, body: bytes) -> str:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("the body must be a JSON object with sub_id") from None
        sub_id = parsed.get("sub_id") if isinstance(parsed, dict) else None
        if not isinstance(sub_id, dict):
            raise InvalidRequest("sub_id (a subject identifier object) is required")
        fmt = sub_id.get("format")
        if fmt == "iss_sub":
            if sub_id.get("iss") != self._id.settings.issuer:
                raise InvalidRequest("iss_sub must name this issuer")
            value = sub_id.get("sub")
        elif fmt == "opaque":
            value = sub_id.get("id")
        else:
            raise InvalidRequest("unsupported subject format (iss_sub or opaque)")
        if not isinstance(value, str) or not value or len(value) > 64:
            raise InvalidRequest("malformed subject identifier")
        return value

    async def handle(self, request: Request) -> Response:
        try:
            oauth = await read_request(request, max_body=self._max_body)
            reach = await self._admin.caller(oauth)  # the admin API's bearer rule
            user_id = self._user_id(oauth.body)
            async with self._id.store.unit_of_work(read_only=True) as uow:
                user = await uow.users.get(user_id)
            if user is None or not reach.covers(user.tenant_id):
                raise _NotFound("no such subject")
            await revoke_subject(self._id, user_id, actor=reach.actor)
            return Response(status_code=204, headers={"cache-control": "no-store"})
        except NoAuthority as exc:
            return JSONResponse(exc.body(), 403, headers={"cache-control": "no-store"})
        except OAuthError as exc:
            return send_error(exc)
        except StoreError:
            return send_error(TemporarilyUnavailable("try again shortly"))
