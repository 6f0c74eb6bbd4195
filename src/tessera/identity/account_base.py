"""What the signed-in user's own pages (``/account/*``, the consent screen) share: finding
the browser's session and user, CSRF tokens bound to that session, the session cookie.

CSRF: ``HMAC(csrf key, purpose ‖ sid ‖ SHA-256(session cookie))``. The token is bound to
server-side state (the session the cookie names), so a cookie planted by another site is
of no use: without the victim's session cookie there is no token to forge, and with the
attacker's own session the form acts on the attacker's account.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from tessera.core.secrets import constant_time_equal, token_hash
from tessera.core.sessions import Session
from tessera.core.users import User
from tessera.identity.browser import SESSION_COOKIE
from tessera.identity.compose import Identity
from tessera.identity.http import read_request
from tessera.protocol.http import OAuthRequest, Params, parse_params

__all__ = ["SessionCsrf", "SignedIn", "base_path", "read_form", "set_session_cookie",
           "signed_in"]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The browser's active session and its (enabled) user."""

    session: Session
    user: User
    handle: str
    """The session cookie's value."""


class SessionCsrf:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def token(self, purpose: str, who: SignedIn) -> str:
        message = f"{purpose}\x00{who.session.sid}\x00{token_hash(who.handle)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def check(self, purpose: str, who: SignedIn, params: Params) -> bool:
        sent = params.get("csrf_token")
        return bool(sent) and constant_time_equal(self.token(purpose, who), sent or "")


def base_path(request: Request) -> str:
    """Where the service is mounted (behind a proxy prefix), for links and form actions."""
    return str(request.scope.get("root_path", ""))


async def signed_in(identity: Identity, oauth: OAuthRequest) -> SignedIn | None:
    handle = oauth.cookies.get(SESSION_COOKIE)
    session = await identity.login.session_for_cookie(handle)
    if session is None or handle is None:
        return None
    user = await identity.login.user(session.user_id)
    if user is None or user.deleted_at is not None:
        return None
    return SignedIn(session, user, handle)


async def read_form(request: Request, max_body: int) -> tuple[OAuthRequest, Params]:
    oauth = await read_request(request, max_body=max_body)
    return oauth, parse_params(oauth, max_body=max_body, allow_query=request.method == "GET")


def set_session_cookie(response: Response, handle: str, *, secure: bool) -> None:
    """The browser session cookie, with the attributes ``identity.browser`` gives it."""
    response.set_cookie(SESSION_COOKIE, handle, httponly=True, samesite="lax", secure=secure,
                        path="/")
