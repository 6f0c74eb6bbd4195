"""The console's HTTP binding (Starlette, mounted at ``/console`` by ``identity.app``).

Every page but the login form runs behind ``_guard``: parse the request, admit the
administrator (else redirect to the login form, or 403), check the CSRF token of every
POST, then render. Routes only convert; ``gate``, ``queries``, ``journey`` and
``operations`` do the work, ``views`` renders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from tessera.application.admin import AdminError, set_backchannel_logout
from tessera.application.standing import client_tenant
from tessera.console import operations, queries, views
from tessera.console.gate import Admin, ConsoleGate, Csrf, NotAnAdmin, Refusal, TooWeak
from tessera.console.html import PAGE_HEADERS, url
from tessera.console.journey import trace
from tessera.console.operations import RevokeKind
from tessera.console.views import Ctx
from tessera.identity.compose import Identity
from tessera.identity.cookies import SESSION_COOKIE, cookie_policy
from tessera.identity.http import read_request
from tessera.identity.login import LoginFailed
from tessera.observability import events
from tessera.protocol.errors import OAuthError
from tessera.protocol.http import OAuthRequest, Params, parse_params
from tessera.store.ports import LEGACY_AUDIT_FIELDS, AuditFilter, StoreError

__all__ = ["ConsoleEndpoints"]

_AUDIT_FIELDS: Final = ("event", "user_id", "tenant", "client_id", "since", "until")
_MAX_NEEDLE: Final = 512
_MAX_PAGE: Final = 100_000


def _html(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, headers=PAGE_HEADERS,
                    media_type="text/html; charset=utf-8")


def _redirect(location: str) -> Response:
    return RedirectResponse(location, status_code=303, headers={"cache-control": "no-store"})


def _number(value: str | None) -> int:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 12:
        return 0
    return min(int(value), _MAX_PAGE * 1000)


def _timestamp(value: str | None, *, end: bool) -> float | None:
    """A ``datetime-local`` value read as UTC; ``end`` makes a minute inclusive."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date and time (YYYY-MM-DDTHH:MM)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    at = parsed.timestamp()
    return at + 59.999 if end and len(value) == 16 else at


@dataclass(frozen=True, slots=True)
class _Call:
    request: Request
    oauth: OAuthRequest
    params: Params
    ctx: Ctx


Handler = Callable[[_Call], Awaitable[Response]]


class ConsoleEndpoints:
    def __init__(self, identity: Identity) -> None:
        self._id = identity
        self._settings = identity.settings.console
        self._gate = ConsoleGate(identity, self._settings)
        self._cookies = cookie_policy(identity.settings)
        self._csrf = Csrf(identity.csrf_key, identity.clock, cookie=self._cookies.name(Csrf.COOKIE))
        self._max_body = identity.settings.security.max_body_bytes

    def routes(self) -> list[BaseRoute]:
        g = self._guard
        return [
            Route("/", g(self._index)),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", g(self._logout), methods=["POST"]),
            Route("/sessions", g(self._sessions)),
            Route("/sessions/{sid}", g(self._session)),
            Route("/revoke", g(self._revoke), methods=["POST"]),
            Route("/audit", g(self._audit)),
            Route("/journey", g(self._journey)),
            Route("/signals", g(self._signals)),
            Route("/signals/logout-uri", g(self._logout_uri), methods=["POST"]),
        ]

    # plumbing -----------------------------------------------------------------------------
    @staticmethod
    def _base(request: Request) -> str:
        return str(request.scope.get("root_path", ""))

    def _set_csrf_cookie(self, response: Response, value: str, base: str) -> None:
        self._cookies.set(response, Csrf.COOKIE, value, samesite="strict")

    def _safe_next(self, value: str | None, base: str) -> str:
        """A console page to return to after signing in; anything else is the list."""
        fallback = base + "/sessions"
        path = (value or "").split("?")[0]
        if not value or len(value) > 2000 or not path.startswith(base + "/") \
                or "//" in value or "\\" in value or "/." in path \
                or path.startswith(base + "/login"):
            return fallback
        return value

    def _guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            base = self._base(request)
            try:
                oauth = await read_request(request, max_body=self._max_body)
                params = parse_params(oauth, max_body=self._max_body, allow_query=True)
                admitted = await self._gate.admit(self._cookies.read(oauth.cookies,
                                                                     SESSION_COOKIE))
                if admitted is Refusal.NOT_ADMIN:
                    return _html(views.forbidden_view(base), 403)
                if isinstance(admitted, Refusal):
                    here = (request.url.path + (f"?{oauth.query}" if oauth.query else "")
                            if request.method == "GET" else None)
                    return _redirect(url(base + "/login", next=self._safe_next(here, base),
                                         why=admitted.value))
                csrf, fresh = self._csrf.issue(oauth.cookies, admitted.session.sid)
                ctx = Ctx(base, admitted, csrf)
                if request.method == "POST" and not self._csrf.check(
                        oauth.cookies, params.get("csrf_token"), admitted.session.sid):
                    response = _html(views.error_view(
                        ctx, "This form expired or did not come from the console. Reload "
                             "the page and try again."), 403)
                else:
                    response = await handler(_Call(request, oauth, params, ctx))
                if fresh:
                    self._set_csrf_cookie(response, fresh, base)
                return response
            except OAuthError as exc:
                return _html(views.error_view(None, exc.description), exc.status)
            except StoreError:
                return _html(views.error_view(None, "The store is briefly unavailable. "
                                                    "Try again."), 503)
        return endpoint

    # sign-in ------------------------------------------------------------------------------
    def _why(self, why: str | None) -> str | None:
        minutes = max(1, self._settings.max_auth_age // 60)
        return {
            Refusal.STEP_UP.value: "The console needs a stronger sign-in "
                                   f"({self._settings.required_acr}). Sign in again.",
            Refusal.STALE.value: f"The console needs a sign-in from the last {minutes} "
                                 "minutes. Sign in again.",
        }.get(why or "", "Sign in with an administrator account.")

    async def login(self, request: Request) -> Response:
        base = self._base(request)
        try:
            oauth = await read_request(request, max_body=self._max_body)
            params = parse_params(oauth, max_body=self._max_body, allow_query=True)
            next_path = self._safe_next(params.get("next"), base)
            if request.method == "POST":
                return await self._login_submit(oauth, params, base, next_path)
            if isinstance(await self._gate.admit(
                    self._cookies.read(oauth.cookies, SESSION_COOKIE)), Admin):
                return _redirect(next_path)
            return self._login_form(oauth, base, next_path, message=self._why(
                params.get("why")))
        except OAuthError as exc:
            return _html(views.error_view(None, exc.description), exc.status)
        except StoreError:
            return _html(views.error_view(None, "The store is briefly unavailable."), 503)

    def _login_form(self, oauth: OAuthRequest, base: str, next_path: str, *,
                    message: str | None = None, error: str | None = None,
                    username: str = "", status: int = 200,
                    tenant: str | None = None) -> Response:
        csrf, fresh = self._csrf.issue(oauth.cookies, "login")
        response = _html(views.login_view(base, csrf=csrf, next_path=next_path,
                                          message=message, error=error, username=username,
                                          tenant=tenant or self._settings.admin_tenant),
                         status)
        if fresh:
            self._set_csrf_cookie(response, fresh, base)
        return response

    async def _login_submit(self, oauth: OAuthRequest, params: Params, base: str,
                            next_path: str) -> Response:
        username = params.get("username") or ""
        if not self._csrf.check(oauth.cookies, params.get("csrf_token"), "login"):
            return self._login_form(oauth, base, next_path, username=username, status=400,
                                    error="Your form expired. Please sign in again.")
        try:
            _, handle = await self._gate.login(
                username, params.get("password") or "", params.get("totp_code"),
                session_cookie=self._cookies.read(oauth.cookies, SESSION_COOKIE),
                client_host=oauth.client_host, user_agent=oauth.headers.get("user-agent"),
                tenant=params.get("tenant") or None)
        except LoginFailed as exc:
            return self._login_form(oauth, base, next_path, error=str(exc),
                                    username=username, status=429 if exc.throttled else 401)
        except NotAnAdmin:
            return self._login_form(oauth, base, next_path, username=username, status=403,
                                    error="This account is not a console administrator.")
        except TooWeak as exc:
            return self._login_form(
                oauth, base, next_path, username=username, status=403,
                error=f"The console requires {exc.required}: set up two-step verification "
                      "(/account/totp), then sign in with your one-time code.")
        response = _redirect(next_path)
        self._cookies.set(response, SESSION_COOKIE, handle)
        return response

    async def _logout(self, call: _Call) -> Response:
        await self._id.logout.end_session(call.ctx.admin.session.sid, actor="user")
        response = _redirect(call.ctx.base + "/login")
        self._cookies.delete(response, SESSION_COOKIE)
        return response

    # pages --------------------------------------------------------------------------------
    async def _index(self, call: _Call) -> Response:
        return _redirect(call.ctx.base + "/sessions")

    @staticmethod
    def _notice(params: Params) -> str | None:
        done, n = params.get("done"), _number(params.get("n"))
        return {
            "session": "Session revoked." if n else "The session was revoked already.",
            "family": "Refresh family revoked." if n else "The family was revoked already.",
            "user": f"Revoked {n} session(s) of the user.",
            "tenant": f"Tenant revoked: {n} session(s) ended; services reject every earlier "
                      "token of the tenant.",
        }.get(done or "")

    @staticmethod
    def _tenant(call: _Call, asked: str | None) -> str | None:
        """The tenant a listing is confined to: the administrator's own, unless they
        are a platform administrator (then the one asked for, or all)."""
        reach = call.ctx.admin.reach
        return asked if reach.platform else reach.tenant_id

    async def _sessions(self, call: _Call) -> Response:
        p = call.params
        criteria = queries.SessionFilter(
            username=p.get("username"), tenant_id=self._tenant(call, p.get("tenant")),
            user_id=p.get("user_id"),
            include_revoked=p.get("all") == "1", page=min(_number(p.get("page")), _MAX_PAGE))
        result = await queries.list_sessions(self._id, criteria,
                                             page_size=self._settings.page_size)
        return _html(views.sessions_view(call.ctx, criteria, result, self._notice(p)))

    async def _session(self, call: _Call) -> Response:
        view = await queries.session_detail(self._id, call.request.path_params["sid"])
        if view is None or not call.ctx.admin.reach.covers(view.session.tenant_id):
            return _html(views.error_view(call.ctx, "No such session."), 404)
        completion = (await queries.logout_completion(self._id, view.session.sid)
                      if view.session.revoked_at is not None else None)
        return _html(views.session_view(call.ctx, view, self._notice(call.params),
                                        completion))

    async def _revoke(self, call: _Call) -> Response:
        if not call.ctx.admin.may_act:
            return _html(views.error_view(call.ctx, "The support role is read-only: it "
                                                    "cannot revoke anything."), 403)
        try:
            kind = RevokeKind(call.params.get("kind") or "")
        except ValueError:
            return _html(views.error_view(call.ctx, "Unknown kind of revocation."), 400)
        target = call.params.get("target")
        if not target:
            return _html(views.error_view(call.ctx, "Nothing to revoke was named."), 400)
        plan = await self._plan(call.ctx, kind, target)  # None also outside the reach
        if plan is None:
            return _html(views.error_view(call.ctx, f"No such {kind.value}."), 404)
        what, effect, back = plan
        if call.params.get("confirm") != "yes":
            return _html(views.confirm_view(call.ctx, kind=kind.value, target=target,
                                            what=what, effect=effect, back=back))
        try:
            outcome = await operations.revoke(self._id, kind, target,
                                              actor=call.ctx.admin.user.user_id)
        except AdminError as exc:
            return _html(views.error_view(call.ctx, str(exc)), 400)
        joiner = "&" if "?" in back else "?"
        return _redirect(f"{back}{joiner}done={kind.value}&n={outcome.ended}")

    async def _plan(self, ctx: Ctx, kind: RevokeKind, target: str
                    ) -> tuple[str, str, str] | None:
        """What the confirmation says: what is revoked, what follows, where to go back."""
        sessions = ctx.base + "/sessions"
        reach = ctx.admin.reach
        if kind is RevokeKind.SESSION:
            view = await queries.session_detail(self._id, target)
            if view is None or not reach.covers(view.session.tenant_id):
                return None
            name = view.user.username if view.user else view.session.user_id
            return (f"session {target} of {name}",
                    f"The session and its {len(view.families)} refresh family(ies) end; "
                    "services reject its access tokens as soon as the revocation reaches "
                    "them (seconds).", f"{sessions}/{target}")
        if kind is RevokeKind.FAMILY:
            family = await queries.load_family(self._id, target)
            if family is None or not reach.covers(family.tenant_id):
                return None
            return (f"refresh family {target} (client {family.client_id})",
                    "The client can no longer refresh in this session, and services "
                    "reject the access tokens the session issued to it. The session stays.",
                    f"{sessions}/{family.sid}")
        if kind is RevokeKind.USER:
            user, active = await queries.load_user(self._id, target)
            if user is None or not reach.covers(user.tenant_id):
                return None
            return (f"every session of {user.username} ({user.tenant_id})",
                    f"{active} active session(s) end, with their refresh families; services "
                    "reject every token of this user issued until now.",
                    url(sessions, user_id=target, all=1))
        if not reach.platform:  # a whole tenant: platform administrators only
            return None
        active = await queries.tenant_active_sessions(self._id, target)
        return (f"tenant {target}",
                f"{active} active session(s) end, and services reject every token of the "
                "tenant issued until now.", url(sessions, tenant=target, all=1))

    async def _audit(self, call: _Call) -> Response:
        form = {k: v for k in _AUDIT_FIELDS if (v := call.params.get(k))}
        error = None
        try:
            since = _timestamp(form.get("since"), end=False)
            until = _timestamp(form.get("until"), end=True)
        except ValueError as exc:
            since = until = None
            error = str(exc)
        criteria = AuditFilter(event=form.get("event"), user_id=form.get("user_id"),
                               tenant_id=self._tenant(call, form.get("tenant")),
                               client_id=form.get("client_id"), since=since, until=until)
        before = _number(call.params.get("before")) or None
        rows, older = await queries.audit_page(self._id, criteria, before_id=before,
                                               page_size=self._settings.page_size)
        return _html(views.audit_view(call.ctx, form, sorted(events.ALL), rows, older, error))

    async def _signals(self, call: _Call) -> Response:
        """Recent risk detections and deliveries, of the administrator's tenant only
        (every tenant for a platform administrator)."""
        reach = call.ctx.admin.reach
        tenant = None if reach.platform else reach.tenant_id
        rows, _older = await queries.audit_page(
            self._id, AuditFilter(event=events.RISK_DETECTED, tenant_id=tenant),
            before_id=None, page_size=self._settings.page_size)
        async with self._id.store.unit_of_work(read_only=True) as uow:
            deliveries = await uow.signals.deliveries(tenant_id=tenant,
                                                      limit=self._settings.page_size)
        notice = ("Back-channel logout registration saved."
                  if call.params.get("done") == "logout-uri" else None)
        return _html(views.signals_view(call.ctx, rows, deliveries, notice))

    async def _logout_uri(self, call: _Call) -> Response:
        """Set or remove a client's back-channel logout URI (a client of the
        administrator's tenant; another tenant's is answered like an unknown one)."""
        if not call.ctx.admin.may_act:
            return _html(views.error_view(call.ctx, "The support role is read-only."), 403)
        client_id = (call.params.get("client_id") or "").strip()
        client = await self._id.clients.get(client_id) if client_id else None
        if client is None or not call.ctx.admin.reach.covers(client_tenant(client)):
            return _html(views.error_view(call.ctx, "No such client."), 404)
        uri = (call.params.get("uri") or "").strip() or None
        try:
            await set_backchannel_logout(
                self._id.admin, client.client_id, uri, call.params.get("session_required") == "yes",
                actor=call.ctx.admin.user.user_id)
        except AdminError as exc:
            return _html(views.error_view(call.ctx, str(exc)), 400)
        return _redirect(call.ctx.base + "/signals?done=logout-uri")

    async def _journey(self, call: _Call) -> Response:
        needle = (call.params.get("needle") or "").strip()[:_MAX_NEEDLE] or None
        journey = None
        if needle:
            journey = await trace(self._id, needle,
                                  decision_logs=self._settings.decision_logs)
            reach = call.ctx.admin.reach
            if not reach.platform:  # only what names the administrator's tenant
                journey = replace(journey, steps=[
                    s for s in journey.steps if reach.tenant_id in (
                        s.fields.get("tenant_id"), s.fields.get(LEGACY_AUDIT_FIELDS["tenant_id"]),
                        s.fields.get("tid"))])
        return _html(views.journey_view(call.ctx, needle, journey))
