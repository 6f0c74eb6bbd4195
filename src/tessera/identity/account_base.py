"""What the signed-in user's own pages (``/account/*``, the consent screen) share: finding
the browser's session and user, CSRF tokens bound to that session, the session cookie.

CSRF: ``identity/login/csrf.py``'s timed tokens, bound here to the session cookie itself
(server-side state: the session it names) and to the session's ``sid``, for one purpose,
and refused for a POST from another origin. A cookie planted by another site is of no
use: without the victim's session cookie there is no token to forge, and with the
attacker's own session the form acts on the attacker's account. Cookies are read and set
through ``identity/cookies.py`` (``__Host-``/``Secure`` with an https issuer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from tessera.core.sessions import Session
from tessera.core.users import User
from tessera.identity.compose import Identity
from tessera.identity.cookies import SESSION_COOKIE, cookie_policy
from tessera.identity.http import read_request
from tessera.identity.login.csrf import CsrfTokens, same_origin
from tessera.protocol.http import OAuthRequest, Params, parse_params

__all__ = ["SessionCsrf", "SignedIn", "base_path", "read_form", "session_cookie",
           "set_session_cookie", "signed_in"]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The browser's active session and its (enabled) user."""

    session: Session
    user: User
    handle: str
    """The session cookie's value."""


class SessionCsrf:
    def __init__(self, identity: Identity) -> None:
        self._tokens = CsrfTokens(identity.csrf_key, identity.clock)
        issuer = urlsplit(identity.settings.issuer)
        self._origin = f"{issuer.scheme}://{issuer.netloc}"

    def token(self, purpose: str, who: SignedIn) -> str:
        return self._tokens.issue(who.handle, f"account:{purpose}", who.session.sid)

    def check(self, purpose: str, who: SignedIn, params: Params,
              headers: Mapping[str, str]) -> bool:
        return same_origin(headers, self._origin) and self._tokens.check(
            params.get("csrf_token"), cookie=who.handle, purpose=f"account:{purpose}",
            transaction=who.session.sid)


def base_path(request: Request) -> str:
    """Where the service is mounted (behind a proxy prefix), for links and form actions."""
    return str(request.scope.get("root_path", ""))


def session_cookie(identity: Identity, oauth: OAuthRequest) -> str | None:
    return cookie_policy(identity.settings).read(oauth.cookies, SESSION_COOKIE)


async def signed_in(identity: Identity, oauth: OAuthRequest) -> SignedIn | None:
    handle = session_cookie(identity, oauth)
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


def set_session_cookie(identity: Identity, response: Response, handle: str) -> None:
    """The browser session cookie, as ``identity.browser`` sets it."""
    cookie_policy(identity.settings).set(response, SESSION_COOKIE, handle)
