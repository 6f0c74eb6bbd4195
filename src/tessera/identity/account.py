"""The signed-in user's own pages: ``/account`` (overview), ``/account/password`` (change
it) and ``/account/totp`` (two-step verification: enrol, recovery codes, turn off).

Every page needs the browser's session (else 401 with a hint to sign in); every POST a
CSRF token bound to that session (``account_base.SessionCsrf``) from our own origin, else
400.

- Password change: the current password is checked like a login (throttled, audited),
  the new one needs 8 characters and a matching confirmation. Every other session of the
  user ends and every token issued until now is refused (``accounts.set_password``); the
  current session stays, with a new cookie.
- Enrolment needs a recent sign-in (``account.recent_auth_seconds``): an older session
  is asked for the password first (same session, new ``auth_time``). Turning TOTP on
  hands out one-time recovery codes, shown once.
- New recovery codes, and turning TOTP off, need a fresh second factor: a current code
  from the app (or, to turn it off, a recovery code).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from tessera.application import accounts, signal_events
from tessera.application.admin import AdminError
from tessera.application.transaction import transaction
from tessera.identity.account_base import (
    SessionCsrf,
    SignedIn,
    base_path,
    read_form,
    set_session_cookie,
    signed_in,
)
from tessera.identity.account_sessions import MySessions
from tessera.identity.compose import Identity
from tessera.identity.login import LoginFailed
from tessera.identity.login.totp import TOTP
from tessera.identity.views import page
from tessera.observability import events
from tessera.protocol.errors import OAuthError
from tessera.protocol.http import OAuthRequest, Params
from tessera.store.ports import StoreError

__all__ = ["AccountEndpoints"]

_Handler = Callable[[Request, OAuthRequest, Params, SignedIn], Awaitable[Response]]


class AccountEndpoints:
    def __init__(self, identity: Identity) -> None:
        self._id = identity
        self._csrf = SessionCsrf(identity)
        self._max_body = identity.settings.security.max_body_bytes
        self._recent = identity.settings.account.recent_auth_seconds
        self._my_sessions = MySessions(identity, self._csrf)

    def _guarded(self, handler: _Handler, purpose: str
                 ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                oauth, params = await read_form(request, self._max_body)
                who = await signed_in(self._id, oauth)
                if who is None:
                    return page("notice.html", 401, title="Sign in first",
                                heading="Sign in first", error=None, link=None,
                                message="Sign in to an application first, then come back "
                                        "to this page.")
                if request.method == "POST" and not self._csrf.check(purpose, who, params,
                                                                      oauth.headers):
                    return page("notice.html", 400, title="Form expired",
                                heading="This form expired", error=None,
                                link=base_path(request) + "/account", link_text="Try again",
                                message="Reload the page and try again.")
                return await handler(request, oauth, params, who)
            except OAuthError as exc:
                return page("notice.html", exc.status, title="Error", heading="Error",
                            error=exc.description, message=None, link=None)
            except StoreError:
                return page("notice.html", 503, title="Unavailable", heading="Try again",
                            error=None, link=None,
                            message="The service is briefly unavailable. Try again.")
        return endpoint

    @property
    def overview(self) -> Callable[[Request], Awaitable[Response]]:
        return self._guarded(self._overview, "account")

    @property
    def password(self) -> Callable[[Request], Awaitable[Response]]:
        return self._guarded(self._password, "password")

    @property
    def sessions(self) -> Callable[[Request], Awaitable[Response]]:
        """``/account/sessions`` (``identity.account_sessions``)."""
        return self._guarded(self._my_sessions.handle, "sessions")

    @property
    def totp(self) -> Callable[[Request], Awaitable[Response]]:
        return self._guarded(self._totp, "totp")

    # /account ----------------------------------------------------------------------------
    async def _overview(self, request: Request, _o: OAuthRequest, _p: Params,
                        who: SignedIn) -> Response:
        view = await accounts.user_view(self._id.admin, who.user)
        recovery = self._id.totp.recovery
        return page("account.html", title="Your account", error=None,
                    base=base_path(request), username=who.user.username,
                    tenant=who.user.tenant_id, roles=sorted(view.roles),
                    totp=await self._id.totp.enrolled(who.user.user_id),
                    remaining=await recovery.remaining(who.user.user_id) if recovery else 0)

    # /account/password -------------------------------------------------------------------
    def _password_form(self, request: Request, who: SignedIn, *, error: str | None = None,
                       status: int = 200) -> Response:
        return page("password.html", status, title="Change your password", error=error,
                    base=base_path(request), csrf=self._csrf.token("password", who))

    async def _password(self, request: Request, oauth: OAuthRequest, params: Params,
                        who: SignedIn) -> Response:
        if request.method != "POST":
            return self._password_form(request, who)
        new, again = params.get("new_password") or "", params.get("confirm_password") or ""
        if new != again:
            return self._password_form(request, who, status=400,
                                       error="The new passwords do not match.")
        try:
            await self._id.login.authenticate(who.user.tenant_id, who.user.username,
                                              params.get("current_password") or "",
                                              client_host=oauth.client_host)
        except LoginFailed as exc:
            return self._password_form(request, who, status=429 if exc.throttled else 401,
                                       error="Your current password is not right."
                                       if not exc.throttled else str(exc))
        try:
            ended = await accounts.set_password(self._id.admin, who.user, new,
                                                actor=who.user.user_id, keep_sid=who.session.sid)
        except AdminError as exc:
            return self._password_form(request, who, status=400, error=str(exc))
        renewed = await self._id.login.reauthenticate(who.session, acr=who.session.acr,
                                                      amr=who.session.amr)
        response = page("notice.html", title="Password changed", heading="Password changed",
                        error=None, link=base_path(request) + "/account",
                        link_text="Back to your account",
                        message=f"Your password is changed; {ended} other session(s) were "
                                "signed out.")
        if renewed is not None:
            set_session_cookie(self._id, response, renewed[1])
        return response

    # /account/totp -----------------------------------------------------------------------
    async def _totp(self, request: Request, oauth: OAuthRequest, params: Params,
                    who: SignedIn) -> Response:
        enrolled = await self._id.totp.enrolled(who.user.user_id)
        step = params.get("step") if request.method == "POST" else None
        if enrolled:
            if step in ("recovery_codes", "disable"):
                return await self._manage(request, params, who, step)
            return self._manage_page(request, who, await self._remaining(who))
        if step == "reauth":
            return await self._reauth(request, oauth, params, who)
        if not self._recent_enough(who):
            return self._reauth_page(request, who)
        if step == "enrol":
            return await self._enrol(request, params, who)
        return await self._enrol_page(request, who)

    def _recent_enough(self, who: SignedIn) -> bool:
        return self._id.clock.now() - who.session.auth_time <= self._recent

    def _reauth_page(self, request: Request, who: SignedIn, *, error: str | None = None,
                     status: int = 200) -> Response:
        minutes = max(1, self._recent // 60)
        return page("reauth.html", status, title="Confirm it is you", error=error,
                    action=base_path(request) + "/account/totp",
                    csrf=self._csrf.token("totp", who),
                    reason=f"Setting up two-step verification needs a sign-in from the last "
                           f"{minutes} minute(s). Enter your password to continue.")

    async def _reauth(self, request: Request, oauth: OAuthRequest, params: Params,
                      who: SignedIn) -> Response:
        try:
            await self._id.login.authenticate(who.user.tenant_id, who.user.username,
                                              params.get("password") or "",
                                              client_host=oauth.client_host)
        except LoginFailed as exc:
            return self._reauth_page(request, who, error=str(exc),
                                     status=429 if exc.throttled else 401)
        async with transaction(self._id.store, self._id.audit) as tx:
            session = await tx.uow.sessions.step_up(
                who.session.sid, acr=who.session.acr, amr=who.session.amr,
                auth_time=self._id.clock.now())
            if session is not None:
                tx.audit(events.SESSION_REAUTHENTICATED, sid=session.sid,
                         user_id=session.user_id, tenant_id=session.tenant_id, acr=session.acr,
                         amr=list(session.amr), previous_acr=who.session.acr)
        if session is None:
            return self._reauth_page(request, who, status=401, error="Your session ended.")
        return await self._enrol_page(request, SignedIn(session, who.user, who.handle))

    async def _enrol_page(self, request: Request, who: SignedIn, *, error: str | None = None,
                          status: int = 200) -> Response:
        enrolment = await self._id.totp.begin_enrolment(who.user)
        if enrolment is None:
            return self._manage_page(request, who, await self._remaining(who))
        return page("totp_enrol.html", status, title="Set up two-step verification",
                    error=error, base=base_path(request), secret=enrolment.secret,
                    uri=enrolment.uri, csrf=self._csrf.token("totp", who))

    async def _enrol(self, request: Request, params: Params, who: SignedIn) -> Response:
        try:
            await self._id.totp.confirm_enrolment(who.user, params.get("totp_code") or "")
        except LoginFailed as exc:
            return await self._enrol_page(request, who, error=str(exc),
                                          status=429 if exc.throttled else 400)
        return await self._codes_page(request, who, "Two-step verification is on")

    async def _codes_page(self, request: Request, who: SignedIn, heading: str) -> Response:
        recovery = self._id.totp.recovery
        codes: list[str] = []
        if recovery is not None:
            async with transaction(self._id.store, self._id.audit) as tx:
                codes = await recovery.issue(tx, who.user, actor=who.user.user_id)
        return page("recovery_codes.html", title=heading, heading=heading, error=None,
                    base=base_path(request), codes=codes)

    def _manage_page(self, request: Request, who: SignedIn, remaining: int, *,
                     error: str | None = None, status: int = 200) -> Response:
        return page("totp_manage.html", status, title="Two-step verification", error=error,
                    base=base_path(request), csrf=self._csrf.token("totp", who),
                    remaining=remaining)

    async def _remaining(self, who: SignedIn) -> int:
        recovery = self._id.totp.recovery
        return await recovery.remaining(who.user.user_id) if recovery else 0

    async def _manage(self, request: Request, params: Params, who: SignedIn,
                      step: str) -> Response:
        code = params.get("totp_code") or ""
        recovery = self._id.totp.recovery
        if step == "recovery_codes" and recovery is not None and recovery.looks_like(code):
            return self._manage_page(request, who, await self._remaining(who), status=400,
                                     error="Use a code from your authenticator app.")
        try:
            await self._id.totp.verify(who.user, code)  # a fresh second factor
        except LoginFailed as exc:
            return self._manage_page(request, who, await self._remaining(who), error=str(exc),
                                     status=429 if exc.throttled else 400)
        if step == "recovery_codes":
            return await self._codes_page(request, who, "New recovery codes")
        async with transaction(self._id.store, self._id.audit) as tx:
            await tx.uow.factors.delete(who.user.user_id, TOTP)
            await tx.uow.recovery_codes.delete_for_user(who.user.user_id)
            tx.audit(events.FACTOR_DISABLED, user_id=who.user.user_id,
                     tenant_id=who.user.tenant_id, kind=TOTP, actor=who.user.user_id)
            await signal_events.credential_changed(
                tx, user_id=who.user.user_id, tenant_id=who.user.tenant_id,
                at=self._id.clock.now(), credential_type="app", change_type="delete")
        return page("notice.html", title="Two-step verification is off",
                    heading="Two-step verification is off", error=None,
                    link=base_path(request) + "/account", link_text="Back to your account",
                    message="Signing in asks only for your password now.")
