"""``/device``: where a person approves a device (RFC 8628 §3.3) — a TV, an IoT device or
a CLI that showed them a user code.

    GET  /device[?user_code=…]      the code form (prefilled from verification_uri_complete)
    POST step=code                  look the code up — throttled per address (§5.1:
                                    user codes are short, guessing is the attack), before
                                    the check; unknown, expired or used codes get one
                                    answer. Signed in (same tenant): the consent page;
                                    else the sign-in form.
    POST step=login                 password (and a TOTP code when enrolled): opens a
                                    browser session like any sign-in (session bounds
                                    apply), then the consent page.
    POST step=approve | step=deny   the signed-in user decides. Approving opens the
                                    device's own session in the same transaction that
                                    records the decision; denying makes the device's next
                                    poll ``access_denied``.

CSRF: the code and sign-in forms carry a token bound to the browser's CSRF cookie and the
step (the sign-in form also to the code); the decision form one bound to the session
cookie and to the code, so a user code cannot be tried at the decision step without
passing the throttled code step. Every POST must come from our own origin.
Tenant isolation: a code is only ever shown to and decided by a user of its client's
tenant; to anyone else it is "not valid".
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from tessera.application.transaction import transaction
from tessera.core.acr import ACR_MFA, ACR_PASSWORD, AMR_OTP, AMR_PASSWORD
from tessera.core.device import DeviceCode, format_user_code, normalise_user_code
from tessera.core.scopes import format_scope
from tessera.core.secrets import new_secret, token_hash
from tessera.core.sessions import Session
from tessera.core.users import User
from tessera.identity.account_base import SignedIn, base_path, read_form, signed_in
from tessera.identity.compose import Identity
from tessera.identity.cookies import CSRF_COOKIE, SESSION_COOKIE, cookie_policy
from tessera.identity.login import LoginFailed
from tessera.identity.login.bounds import SessionLimitReached
from tessera.identity.login.csrf import CsrfTokens, same_origin
from tessera.identity.views import page
from tessera.observability import events
from tessera.protocol.errors import OAuthError
from tessera.protocol.http import OAuthRequest, Params
from tessera.store.ports import StoreError, UnitOfWork

__all__ = ["DevicePage"]

_INVALID = "That code is not valid. It may have expired or been used already; start again " \
           "on your device."


class DevicePage:
    def __init__(self, identity: Identity) -> None:
        self._id = identity
        self._max_body = identity.settings.security.max_body_bytes
        self._cookies = cookie_policy(identity.settings)
        self._csrf = CsrfTokens(identity.csrf_key, identity.clock)
        issuer = urlsplit(identity.settings.issuer)
        self._origin = f"{issuer.scheme}://{issuer.netloc}"
        throttles = identity.throttles
        self._throttle = throttles.device_user_code if throttles is not None else None

    async def handle(self, request: Request) -> Response:
        try:
            oauth, params = await read_form(request, self._max_body)
            if request.method != "POST":
                return self._code_form(request, oauth, prefill=params.get("user_code"))
            if not same_origin(oauth.headers, self._origin):
                return self._notice(400, "This form expired", "Reload the page and try again.")
            step = params.get("step")
            if step == "code":
                return await self._code_step(request, oauth, params)
            if step == "login":
                return await self._login_step(request, oauth, params)
            if step in ("approve", "deny"):
                return await self._decision(request, oauth, params, approve=step == "approve")
            return self._code_form(request, oauth, status=400, error="Enter the code.")
        except OAuthError as exc:
            return self._notice(exc.status, "Error", exc.description)
        except StoreError:
            return self._notice(503, "Try again", "The service is briefly unavailable.")

    # pages --------------------------------------------------------------------------------
    @staticmethod
    def _notice(status: int, heading: str, message: str) -> Response:
        return page("notice.html", status, title=heading, heading=heading, error=None,
                    link=None, message=message)

    def _anon_csrf(self, oauth: OAuthRequest, purpose: str, transaction: str
                   ) -> tuple[str, str | None]:
        cookie = self._cookies.read(oauth.cookies, CSRF_COOKIE)
        cookie = cookie if cookie and 16 <= len(cookie) <= 64 else None
        fresh = None if cookie else new_secret()
        return self._csrf.issue(cookie or fresh or "", purpose, transaction), fresh

    def _anon_csrf_ok(self, oauth: OAuthRequest, params: Params, purpose: str,
                      transaction: str) -> bool:
        return self._csrf.check(params.get("csrf_token"),
                                cookie=self._cookies.read(oauth.cookies, CSRF_COOKIE),
                                purpose=purpose, transaction=transaction)

    def _with_cookie(self, response: Response, fresh: str | None) -> Response:
        if fresh:
            self._cookies.set(response, CSRF_COOKIE, fresh)
        return response

    def _code_form(self, request: Request, oauth: OAuthRequest, *, prefill: str | None = None,
                   error: str | None = None, status: int = 200) -> Response:
        csrf, fresh = self._anon_csrf(oauth, "device:code", "")
        normal = normalise_user_code(prefill)
        return self._with_cookie(page(
            "device_code.html", status, title="Connect a device", error=error,
            base=base_path(request), csrf=csrf,
            user_code=format_user_code(normal) if normal else ""), fresh)

    def _login_form(self, request: Request, oauth: OAuthRequest, code: DeviceCode,
                    user_code: str, client_name: str, *, error: str | None = None,
                    status: int = 200, username: str = "") -> Response:
        csrf, fresh = self._anon_csrf(oauth, "device:login", user_code)
        return self._with_cookie(page(
            "device_login.html", status, title="Sign in to connect a device", error=error,
            base=base_path(request), csrf=csrf, user_code=user_code,
            shown_code=format_user_code(user_code), client_name=client_name,
            username=username), fresh)

    def _consent(self, request: Request, who: SignedIn, code: DeviceCode, user_code: str,
                 client_name: str, *, fresh_session: str | None = None) -> Response:
        handle = fresh_session or who.handle
        response = page(
            "device_consent.html", title="Connect a device", error=None,
            base=base_path(request), user_code=user_code,
            shown_code=format_user_code(user_code), client_name=client_name,
            scopes=sorted(code.scope), username=who.user.username,
            csrf=self._csrf.issue(handle, "device:decide", f"{who.session.sid}:{user_code}"))
        if fresh_session:
            self._cookies.set(response, SESSION_COOKIE, fresh_session)
        return response

    # lookups ------------------------------------------------------------------------------
    async def _pending(self, user_code: str) -> tuple[DeviceCode, str] | None:
        """The pending, unexpired request of ``user_code`` and its client's name."""
        async with self._id.store.unit_of_work(read_only=True) as uow:
            code = await uow.device_codes.by_user_code(token_hash(user_code))
            client = await uow.clients.get(code.client_id) if code else None
        if (code is None or client is None or client.disabled or code.status != "pending"
                or code.expired(self._id.clock.now())):
            return None
        return code, client.name

    # steps --------------------------------------------------------------------------------
    async def _code_step(self, request: Request, oauth: OAuthRequest,
                         params: Params) -> Response:
        if not self._anon_csrf_ok(oauth, params, "device:code", ""):
            return self._code_form(request, oauth, status=400, prefill=params.get("user_code"),
                                   error="The form expired. Enter the code again.")
        if self._throttle is not None and not await self._throttle.hit(
                oauth.client_host or "unknown"):
            return self._code_form(request, oauth, status=429,
                                   error="Too many attempts. Wait a minute and try again.")
        user_code = normalise_user_code(params.get("user_code"))
        found = await self._pending(user_code) if user_code else None
        if found is None or user_code is None:
            return self._code_form(request, oauth, status=400, error=_INVALID)
        code, client_name = found
        who = await signed_in(self._id, oauth)
        if who is not None and who.user.tenant_id == code.tenant_id:
            return self._consent(request, who, code, user_code, client_name)
        return self._login_form(request, oauth, code, user_code, client_name)

    async def _login_step(self, request: Request, oauth: OAuthRequest,
                          params: Params) -> Response:
        user_code = normalise_user_code(params.get("user_code")) or ""
        if not user_code or not self._anon_csrf_ok(oauth, params, "device:login", user_code):
            return self._code_form(request, oauth, status=400,
                                   error="The form expired. Enter the code again.")
        found = await self._pending(user_code)
        if found is None:
            return self._code_form(request, oauth, status=400, error=_INVALID)
        code, client_name = found
        username = params.get("username") or ""
        try:
            user, acr, amr = await self._authenticate(oauth, params, code.tenant_id, username)
            session, handle = await self._id.login.open_session(
                user, user_agent=oauth.headers.get("user-agent"), acr=acr, amr=amr,
                client_address=oauth.client_host)
        except LoginFailed as exc:
            status = (429 if exc.throttled else 403 if isinstance(exc, SessionLimitReached)
                      else 401)
            return self._login_form(request, oauth, code, user_code, client_name,
                                    error=str(exc), status=status, username=username)
        who = SignedIn(session, user, handle)
        return self._consent(request, who, code, user_code, client_name, fresh_session=handle)

    async def _authenticate(self, oauth: OAuthRequest, params: Params, tenant_id: str,
                            username: str) -> tuple[User, str, tuple[str, ...]]:
        user = await self._id.login.authenticate(tenant_id, username,
                                                 params.get("password") or "",
                                                 client_host=oauth.client_host)
        if not await self._id.totp.enrolled(user.user_id):
            return user, ACR_PASSWORD, (AMR_PASSWORD,)
        code = params.get("totp_code")
        if not code:
            raise LoginFailed("Enter the one-time code from your authenticator app.")
        await self._id.totp.verify(user, code)
        return user, ACR_MFA, (AMR_PASSWORD, AMR_OTP)

    async def _decision(self, request: Request, oauth: OAuthRequest, params: Params, *,
                        approve: bool) -> Response:
        who = await signed_in(self._id, oauth)
        user_code = normalise_user_code(params.get("user_code")) or ""
        if who is None or not user_code or not self._csrf.check(
                params.get("csrf_token"), cookie=who.handle, purpose="device:decide",
                transaction=f"{who.session.sid}:{user_code}"):
            return self._code_form(request, oauth, status=400,
                                   error="The form expired. Enter the code again.")
        found = await self._pending(user_code)
        if found is None or found[0].tenant_id != who.user.tenant_id:
            return self._code_form(request, oauth, status=400, error=_INVALID)
        code, client_name = found
        if approve:
            try:
                decided = await self._approve(who, code, client_name, user_code)
            except SessionLimitReached as exc:
                return self._notice(403, "Too many sessions", str(exc))
        else:
            decided = await self._deny(who, code, user_code)
        if not decided:
            return self._code_form(request, oauth, status=400, error=_INVALID)
        if approve:
            return self._notice(200, "Device connected",
                                f"{client_name} is connected to your account. You can "
                                "return to your device.")
        return self._notice(200, "Request denied",
                            f"{client_name} was not connected. You can close this page.")

    async def _approve(self, who: SignedIn, code: DeviceCode, client_name: str,
                       user_code: str) -> bool:
        now = self._id.clock.now()

        async def record(uow: UnitOfWork, session: Session) -> bool:
            return await uow.device_codes.decide(token_hash(user_code), approve=True,
                                                 user_id=who.user.user_id, sid=session.sid,
                                                 at=now)

        session = await self._id.login.open_device_session(
            who.user, client_id=code.client_id, device_name=client_name,
            acr=who.session.acr, amr=who.session.amr, auth_time=who.session.auth_time,
            client_address=code.client_address, commit_if=record)
        if session is None:
            return False
        await self._id.audit.record(events.DEVICE_CODE_APPROVED, client_id=code.client_id,
                                    user_id=who.user.user_id, tenant_id=code.tenant_id,
                                    sid=session.sid, scopes=format_scope(code.scope),
                                    token_hash=code.device_code_hash)
        return True

    async def _deny(self, who: SignedIn, code: DeviceCode, user_code: str) -> bool:
        async with transaction(self._id.store, self._id.audit) as tx:
            denied = await tx.uow.device_codes.decide(
                token_hash(user_code), approve=False, user_id=who.user.user_id, sid=None,
                at=self._id.clock.now())
            if denied:
                tx.audit(events.DEVICE_CODE_DENIED, client_id=code.client_id,
                         user_id=who.user.user_id, tenant_id=code.tenant_id,
                         token_hash=code.device_code_hash)
        return denied
