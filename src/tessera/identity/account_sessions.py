"""``/account/sessions``: the signed-in user's own sessions ("my sessions", issue 13).

GET lists every active session of the user — browsers and devices approved through the
device flow (RFC 8628) alike — with its user agent or device, the address it was opened
from, when it was created and last seen, and which one is this browser's. POST ends one
of them (``sid``): only a session of the signed-in user (another user's ``sid`` is
answered like an unknown one, 404), revoked through the outbox like any revocation
(reason ``ended_by_user``), so its tokens are refused everywhere. Ending the current
session signs this browser out. CSRF: ``account_base.SessionCsrf`` (purpose ``sessions``)
from our own origin, checked by ``AccountEndpoints`` before this runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from tessera.application import lifecycle
from tessera.application.transaction import transaction
from tessera.core.sessions import Session
from tessera.identity.account_base import SessionCsrf, SignedIn, base_path
from tessera.identity.compose import Identity
from tessera.identity.cookies import SESSION_COOKIE, cookie_policy
from tessera.identity.views import page
from tessera.observability import events
from tessera.protocol.http import OAuthRequest, Params

__all__ = ["MySessions"]

ENDED_BY_USER = "ended_by_user"
_MAX_LISTED = 200


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class _Row:
    sid: str
    device: str
    kind: str
    address: str
    created: str
    last_seen: str
    current: bool


def _row(session: Session, current_sid: str) -> _Row:
    device = session.user_agent or "Unknown browser"
    return _Row(sid=session.sid, device=device,
                kind="device" if session.device_client_id else "browser",
                address=session.client_address or "unknown",
                created=_when(session.created_at), last_seen=_when(session.last_seen_at),
                current=session.sid == current_sid)


class MySessions:
    def __init__(self, identity: Identity, csrf: SessionCsrf) -> None:
        self._id = identity
        self._csrf = csrf
        self._cookies = cookie_policy(identity.settings)

    async def _list(self, request: Request, who: SignedIn, *, notice: str | None = None,
                    error: str | None = None, status: int = 200) -> Response:
        async with self._id.store.unit_of_work(read_only=True) as uow:
            sessions = await uow.sessions.search(user_ids=[who.user.user_id],
                                                 limit=_MAX_LISTED)
        rows = [_row(s, who.session.sid) for s in sessions
                if s.actor_sid is None and s.actor_jti is None]
        rows.sort(key=lambda r: (not r.current,))  # this browser first, then newest
        return page("sessions.html", status, title="Your sessions", error=error,
                    notice=notice, base=base_path(request), rows=rows,
                    csrf=self._csrf.token("sessions", who))

    async def handle(self, request: Request, _o: OAuthRequest, params: Params,
                     who: SignedIn) -> Response:
        if request.method != "POST":
            return await self._list(request, who)
        sid = params.get("sid") or ""
        now = self._id.clock.now()
        async with transaction(self._id.store, self._id.audit) as tx:
            target = await tx.uow.sessions.get(sid) if 0 < len(sid) <= 64 else None
            if target is None or target.user_id != who.user.user_id or not target.active:
                target = None
            else:
                await lifecycle.revoke_session(
                    tx, sid, at=now, reason=ENDED_BY_USER, actor=who.user.user_id,
                    token_ttl=self._id.settings.tokens.access_token_ttl)
                tx.audit(events.SESSION_LOGOUT, sid=sid, actor=who.user.user_id)
        if target is None:
            return await self._list(request, who, status=404,
                                    error="That session is not one of yours, or it "
                                          "has ended already.")
        if sid == who.session.sid:
            response = page("notice.html", title="Signed out", heading="Signed out",
                            error=None, link=None,
                            message="You ended the session of this browser.")
            self._cookies.delete(response, SESSION_COOKIE)
            return response
        return await self._list(request, who, notice="The session was ended.")
