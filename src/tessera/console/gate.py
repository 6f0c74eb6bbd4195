"""Who may use the console: a browser session of a user holding a console role, strong
and fresh enough, checked against the store on every request.

Roles (``core.roles``): ``platform-admin`` sees and acts on every tenant,
``tenant-admin`` on its own tenant, ``support`` sees its own tenant read-only. A request
passes when its ``tessera_session`` cookie names an active session of a user in good
standing (``application.standing``: enabled, tenant not suspended) who holds one of them
*now*, whose ``acr`` is at least ``console.required_acr`` (``core.acr`` ordering) and
whose ``auth_time`` is at most ``console.max_auth_age`` seconds old (step-up). Otherwise
the verdict says why, and the web layer either sends the browser to the console login
form or refuses (403). Revoking a role locks its holder out on their next request.

The console login takes the tenant (``console.admin_tenant`` by default), the password
and, for users with TOTP, the current code in one form. With a browser session of the
same user it re-authenticates in that session (same ``sid``, raised ``acr``, new
``auth_time``), otherwise it opens a new session; the identity service's browser session
cookie is set either way, so the same session serves the console and single sign-on.

CSRF: an itsdangerous timed token bound to a random cookie (see ``Csrf``); the cookie is a
random value set on the console's path (SameSite=Strict, HttpOnly).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from tessera.application.standing import NotInGoodStanding, reach_of
from tessera.core.acr import ACR_MFA, ACR_PASSWORD, AMR_OTP, AMR_PASSWORD, acr_satisfies
from tessera.core.clock import Clock
from tessera.core.roles import ADMIN_SCOPE, SUPPORT_SCOPE, Reach
from tessera.core.secrets import new_secret, token_hash
from tessera.core.sessions import Session
from tessera.core.users import User
from tessera.identity.compose import Identity
from tessera.identity.login import LoginFailed
from tessera.identity.login.csrf import CsrfTokens
from tessera.observability import events
from tessera.settings import ConsoleSettings

__all__ = ["Admin", "ConsoleGate", "Csrf", "NotAnAdmin", "Refusal", "TooWeak"]


class Refusal(Enum):
    """Why a request does not get in."""

    NO_SESSION = "no_session"
    """No (active) browser session: sign in."""
    NOT_ADMIN = "not_admin"
    """Signed in, but not as an administrator: 403."""
    STEP_UP = "step_up"
    """The session's acr is weaker than ``console.required_acr``: sign in again."""
    STALE = "stale"
    """The last authentication is older than ``console.max_auth_age``: sign in again."""


class NotAnAdmin(Exception):
    """The credentials are right but the user is not a console administrator."""


class TooWeak(Exception):
    """The credentials are right but reach a weaker ``acr`` than the console requires
    (no second factor enrolled): no session is opened or raised."""

    def __init__(self, reached: str, required: str) -> None:
        super().__init__(f"reached {reached}, requires {required}")
        self.reached = reached
        self.required = required


@dataclass(frozen=True, slots=True)
class Admin:
    """The administrator behind a request, with what they may reach (read now)."""

    user: User
    session: Session
    reach: Reach

    @property
    def may_act(self) -> bool:
        """May revoke (tenant-admin, platform-admin); support only looks."""
        return self.reach.may(ADMIN_SCOPE)


class Csrf:
    """The console's CSRF tokens: itsdangerous timed signatures (``CsrfTokens``, the same
    as the login pages') bound to this browser's random cookie, to the purpose
    ``console`` and to what the form is for: the admin's session (``sid``) on signed-in
    pages, ``login`` on the sign-in form. A token of one admin session is nothing to the
    next one, and every token expires."""

    COOKIE = "tessera_console_csrf"
    """The cookie's base name (``__Host-`` prefixed with an https issuer: ``cookie``)."""

    def __init__(self, key: bytes, clock: Clock, *, cookie: str = COOKIE) -> None:
        self._tokens = CsrfTokens(key, clock)
        self._cookie = cookie

    def issue(self, cookies: Mapping[str, str], bound_to: str) -> tuple[str, str | None]:
        """The token for this browser and form and, when the browser has no usable
        cookie, a fresh cookie value to set."""
        cookie = cookies.get(self._cookie)
        fresh = None
        if not cookie or not 16 <= len(cookie) <= 64:
            cookie = fresh = new_secret()
        return self._tokens.issue(cookie, "console", bound_to), fresh

    def check(self, cookies: Mapping[str, str], sent: str | None, bound_to: str) -> bool:
        cookie = cookies.get(self._cookie)
        if not cookie or len(cookie) > 64:
            return False
        return self._tokens.check(sent, cookie=cookie, purpose="console",
                                  transaction=bound_to)


class ConsoleGate:
    def __init__(self, identity: Identity, settings: ConsoleSettings) -> None:
        self._id = identity
        self._settings = settings

    async def reach(self, user: User) -> Reach | None:
        """The user's console reach now: None unless in good standing with a console role."""
        async with self._id.store.unit_of_work(read_only=True) as uow:
            try:
                reach = await reach_of(uow, user.user_id)
            except NotInGoodStanding:
                return None
        return reach if reach.may(SUPPORT_SCOPE) else None

    async def admit(self, session_cookie: str | None) -> Admin | Refusal:
        """The administrator of this browser session, or why there is none."""
        session = await self._id.login.session_for_cookie(session_cookie)
        if session is None:
            return Refusal.NO_SESSION
        async with self._id.store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get(session.user_id)
        reach = await self.reach(user) if user is not None else None
        if user is None or reach is None:
            return Refusal.NOT_ADMIN
        if not acr_satisfies(session.acr, self._settings.required_acr):
            return Refusal.STEP_UP
        if self._id.clock.now() - session.auth_time > self._settings.max_auth_age:
            return Refusal.STALE
        return Admin(user, session, reach)

    async def login(self, username: str, password: str, code: str | None, *,
                    session_cookie: str | None, client_host: str | None,
                    user_agent: str | None, tenant: str | None = None
                    ) -> tuple[Session, str]:
        """Check an administrator's password (and TOTP code, when enrolled) and open or
        raise a session; returns it and the new browser cookie value. Raises
        ``identity.login.LoginFailed`` (wrong credentials or code, missing code,
        throttled), ``NotAnAdmin`` or ``TooWeak``; neither of the last two touches any
        session."""
        tenant = tenant or self._settings.admin_tenant
        user = await self._id.login.authenticate(tenant, username, password,
                                                 client_host=client_host)
        if await self.reach(user) is None:
            await self._id.audit.record(events.LOGIN_FAILED, tenant_id=tenant,
                                        username_hash=token_hash(username),
                                        reason="console_not_admin")
            raise NotAnAdmin(username)
        acr: str = ACR_PASSWORD
        amr: tuple[str, ...] = (AMR_PASSWORD,)
        if await self._id.totp.enrolled(user.user_id):
            if not code:
                raise LoginFailed("Enter the one-time code from your authenticator app.")
            await self._id.totp.verify(user, code)
            acr, amr = ACR_MFA, (AMR_PASSWORD, AMR_OTP)
        if not acr_satisfies(acr, self._settings.required_acr):
            raise TooWeak(acr, self._settings.required_acr)
        current = await self._id.login.session_for_cookie(session_cookie)
        if current is not None and current.user_id == user.user_id:
            raised = await self._id.login.reauthenticate(current, acr=acr, amr=amr)
            if raised is not None:
                return raised
        return await self._id.login.open_session(user, user_agent=user_agent, acr=acr,
                                                 amr=amr, client_address=client_host)

