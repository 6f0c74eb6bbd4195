"""Browser-facing endpoints: the authorization endpoint with its login page (password,
then a TOTP code for enrolled users) and RP-initiated logout; the account pages
(``/account/*``) are ``identity.account``, the consent step ``identity.consent``.
Cookies: ``identity/cookies.py`` (``__Host-`` and ``Secure`` with an https issuer). CSRF:
``identity/login/csrf.py`` (a timed token bound to the browser's cookie, the form's
purpose and its transaction; cross-origin POSTs refused).

Login always ends in ``_complete``: with a browser session of the same user it is a
re-authentication in that session (same ``sid``: step-up, ``prompt=login``, ``max_age``),
otherwise a new session. Users with TOTP are always asked for a code, so their sessions
are ``urn:tessera:acr:mfa``.

Logout (OIDC RP-Initiated Logout 1.0 §2): an ``id_token_hint`` naming the browser's own
session ends it at once; a hint that names another session, or arrives in a browser
without one, and a request without a hint both ask the user first (the OP "MUST ask ...
if the supplied ID Token does not belong to the current OP session"). Confirmed, the
hint's session and the browser's own are ended."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tessera.core.acr import ACR_MFA, ACR_PASSWORD, AMR_OTP, AMR_PASSWORD
from tessera.core.federation import UpstreamSession
from tessera.core.secrets import new_secret
from tessera.core.sessions import Session
from tessera.core.users import DEFAULT_TENANT, User
from tessera.identity.compose import Identity
from tessera.identity.consent import ConsentEndpoints
from tessera.identity.cookies import CSRF_COOKIE, SESSION_COOKIE, cookie_policy
from tessera.identity.http import read_request
from tessera.identity.login import LoginFailed
from tessera.identity.login.bounds import SessionLimitReached
from tessera.identity.login.csrf import CsrfTokens, fingerprint, same_origin
from tessera.identity.login.pages import (
    error_page,
    logged_out_page,
    login_page,
    logout_page,
    totp_page,
)
from tessera.identity.login.pending import PendingLogin
from tessera.identity.views import PAGE_HEADERS, allow_form_redirect, page
from tessera.protocol.errors import OAuthError
from tessera.protocol.http import OAuthRequest, Params, parse_params
from tessera.protocol.rfc6749.authorize import (
    AuthorizationRequest,
    RedirectError,
    UserFacingError,
)
from tessera.store.ports import StoreError

__all__ = ["BrowserEndpoints"]

_AUTHZ_FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
                 "code_challenge", "code_challenge_method", "prompt", "max_age", "resource",
                 "acr_values")
_LOGOUT_FIELDS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")


def _html(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, headers=PAGE_HEADERS,
                    media_type="text/html; charset=utf-8")


class BrowserEndpoints:
    def __init__(self, identity: Identity) -> None:
        self._id = identity
        self.consent = ConsentEndpoints(identity)
        self._max_body = identity.settings.security.max_body_bytes
        self._cookies = cookie_policy(identity.settings)
        self.cookies = self._cookies
        self._csrf = CsrfTokens(identity.csrf_key, identity.clock)
        issuer = urlsplit(identity.settings.issuer)
        self._origin = f"{issuer.scheme}://{issuer.netloc}"

    # cookies and CSRF ---------------------------------------------------------------------
    def _session_cookie(self, request: OAuthRequest) -> str | None:
        return self._cookies.read(request.cookies, SESSION_COOKIE)

    def _csrf_cookie(self, request: OAuthRequest) -> str | None:
        cookie = self._cookies.read(request.cookies, CSRF_COOKIE)
        return cookie if cookie and 16 <= len(cookie) <= 64 else None

    def _csrf_ok(self, request: OAuthRequest, params: Params, purpose: str,
                 transaction: str) -> bool:
        """The form was rendered by us, for this browser, purpose and transaction, recently,
        and is submitted from our own origin."""
        return same_origin(request.headers, self._origin) and self._csrf.check(
            params.get("csrf_token"), cookie=self._csrf_cookie(request), purpose=purpose,
            transaction=transaction)

    def _with_csrf_cookie(self, request: OAuthRequest, purpose: str, transaction: str
                          ) -> tuple[str, str | None]:
        """The token for a form and, when the browser has no usable CSRF cookie, a fresh
        cookie value to set with the page."""
        cookie = self._csrf_cookie(request)
        fresh = None if cookie else new_secret()
        return self._csrf.issue(cookie or fresh or "", purpose, transaction), fresh

    def _set_cookie(self, response: Response, name: str, value: str) -> None:
        self._cookies.set(response, name, value)

    # /authorize -------------------------------------------------------------------------
    async def authorize(self, request: Request) -> Response:
        try:
            oauth = await read_request(request, max_body=self._max_body)
            params = parse_params(oauth, max_body=self._max_body, allow_query=True)
            authz = await self._id.authorize.parse(params)
            if request.method == "POST":
                if "pending" in params:
                    return await self._totp_submit(oauth, params, authz)
                return await self._login_submit(oauth, params, authz)
            session = self._id.authorize.usable_session(
                authz, await self._id.login.session_for_cookie(self._session_cookie(oauth)))
            if not self._id.authorize.needs_login(authz, session):
                assert session is not None
                return await self.consent.finish(oauth, authz, session,
                                                 self._session_cookie(oauth) or "")
            if session is not None and self._id.authorize.acr_too_low(authz, session.acr):
                await self._id.authorize.record_step_up(authz, session)
            if authz.prompt is not None and "none" in authz.prompt.split():
                return RedirectResponse(self._id.authorize.login_required(authz), 303)
            upstream = await self._upstream_for(params, authz, session)
            if upstream is not None:
                return RedirectResponse(upstream, 303)
            return await self._login_form_with_providers(oauth, params, authz)
        except UserFacingError as exc:
            return _html(error_page(str(exc)), 400)
        except RedirectError as exc:
            return RedirectResponse(exc.location, status_code=303)
        except OAuthError as exc:
            return _html(error_page(exc.description), exc.status)
        except StoreError:
            return _html(error_page("The service is briefly unavailable. Try again."), 503)

    # federation (identity/federation) ----------------------------------------------------
    async def _upstream_for(self, params: Params, authz: AuthorizationRequest,
                            session: Session | None) -> str | None:
        """Where to sign in instead of the password form, if anywhere: the provider of a
        federated session that must re-authenticate (step-up goes back to it),
        ``idp_hint=NAME``, or the home realm of ``login_hint``'s e-mail domain."""
        if not self._id.settings.federation.enabled:
            return None
        from tessera.identity.federation.endpoints import start_url

        tenant = authz.client.tenant_id or DEFAULT_TENANT
        fields = self._authz_fields(params)
        if session is not None:
            async with self._id.store.unit_of_work(read_only=True) as uow:
                upstream = await uow.federation.upstream_session(session.sid)
            if upstream is not None:
                provider = await self._id.federation.provider(upstream.idp_id)
                if provider is not None and not provider.disabled:
                    return self._absolute(start_url(provider.idp_id, fields))
        hint = params.get("idp_hint")
        if hint:
            provider = await self._id.federation.by_name(tenant, hint)
            if provider is not None:
                return self._absolute(start_url(provider.idp_id, fields))
        login_hint = params.get("login_hint")
        realm = await self._id.federation.home_realm(tenant, login_hint)
        if realm is not None and login_hint:
            return self._absolute(start_url(realm.idp_id, fields | {"login_hint": login_hint}))
        return None

    def _absolute(self, relative: str) -> str:
        return f"{self._id.settings.issuer}/{relative}"

    async def _providers(self, authz: AuthorizationRequest, fields: dict[str, str]
                         ) -> list[tuple[str, str]]:
        if not self._id.settings.federation.enabled:
            return []
        from tessera.identity.federation.endpoints import start_url

        tenant = authz.client.tenant_id or DEFAULT_TENANT
        return [(p.name, start_url(p.idp_id, fields))
                for p in await self._id.federation.providers(tenant)]

    async def _login_form_with_providers(self, oauth: OAuthRequest, params: Params,
                                         authz: AuthorizationRequest, **kw: Any) -> Response:
        providers = await self._providers(authz, self._authz_fields(params))
        return self._login_form(oauth, params, authz, providers=providers, **kw)

    async def complete_login(self, oauth: OAuthRequest, authz: AuthorizationRequest,
                             user: User, acr: str, amr: tuple[str, ...], *,
                             upstream: UpstreamSession | None = None) -> Response:
        """Finish a login made elsewhere (an upstream provider): ``_complete``."""
        return await self._complete(oauth, authz, user, acr, amr, upstream=upstream)

    @staticmethod
    def _authz_fields(params: Params) -> dict[str, str]:
        """The authorization request the login form completes (its CSRF transaction)."""
        return {k: v for k, v in params.as_dict().items() if k in _AUTHZ_FIELDS}

    def _login_form(self, oauth: OAuthRequest, params: Params, authz: AuthorizationRequest,
                    *, error: str | None = None, username: str = "",
                    status: int = 200, providers: list[tuple[str, str]] | None = None
                    ) -> Response:
        fields = self._authz_fields(params)
        csrf, fresh_cookie = self._with_csrf_cookie(oauth, "login", fingerprint(fields))
        response = allow_form_redirect(
            _html(login_page(client_name=authz.client.name, fields=fields, csrf=csrf,
                             error=error, username=username, providers=providers or []),
                  status), authz.redirect_uri)
        if fresh_cookie:
            self._set_cookie(response, CSRF_COOKIE, fresh_cookie)
        return response

    async def _login_submit(self, oauth: OAuthRequest, params: Params,
                            authz: AuthorizationRequest) -> Response:
        if not self._csrf_ok(oauth, params, "login", fingerprint(self._authz_fields(params))):
            return self._login_form(oauth, params, authz, status=400,
                                    error="Your form expired. Please sign in again.")
        username = params.get("username") or ""
        tenant = authz.client.tenant_id or DEFAULT_TENANT
        if self._id.settings.federation.enabled and "@" in username:
            realm = await self._id.federation.home_realm(tenant, username)
            if realm is not None:  # home-realm discovery: the e-mail's provider signs in
                from tessera.identity.federation.endpoints import start_url

                return RedirectResponse(self._absolute(start_url(
                    realm.idp_id, self._authz_fields(params) | {"login_hint": username})), 303)
        try:
            user = await self._id.login.authenticate(tenant, username,
                                                     params.get("password") or "",
                                                     client_host=oauth.client_host,
                                                     user_agent=oauth.headers.get("user-agent"))
        except LoginFailed as exc:
            return await self._login_form_with_providers(
                oauth, params, authz, error=str(exc), username=username,
                status=429 if exc.throttled else 401)
        if await self._id.totp.enrolled(user.user_id):
            cookie = self._csrf_cookie(oauth)
            assert cookie is not None  # _csrf_ok
            pending = self._id.pending_logins.issue(
                PendingLogin(user.user_id, authz.client.client_id), csrf_cookie=cookie)
            return self._totp_form(oauth, params, authz, pending=pending)
        if self._id.authorize.acr_too_low(authz, ACR_PASSWORD):
            return RedirectResponse(self._id.authorize.unmet_requirements(authz), 303)
        return await self._complete(oauth, authz, user, ACR_PASSWORD, (AMR_PASSWORD,))

    def _totp_form(self, oauth: OAuthRequest, params: Params, authz: AuthorizationRequest,
                   *, pending: str, error: str | None = None, status: int = 200) -> Response:
        csrf, _ = self._with_csrf_cookie(oauth, "totp", pending)
        return allow_form_redirect(
            _html(totp_page(client_name=authz.client.name, fields=self._authz_fields(params),
                            csrf=csrf, pending=pending, error=error), status),
            authz.redirect_uri)

    async def _totp_submit(self, oauth: OAuthRequest, params: Params,
                           authz: AuthorizationRequest) -> Response:
        """The second step: the pending login (signed, bound to this browser) and a code."""
        expired = "Your sign-in expired. Please sign in again."
        if not self._csrf_ok(oauth, params, "totp", params.get("pending") or ""):
            return self._login_form(oauth, params, authz, status=400, error=expired)
        pending = self._id.pending_logins.open(
            params.get("pending"), csrf_cookie=self._csrf_cookie(oauth),
            client_id=authz.client.client_id)
        user = await self._id.login.user(pending.user_id) if pending else None
        if user is None:
            return self._login_form(oauth, params, authz, status=400, error=expired)
        try:
            await self._id.totp.verify(user, params.get("totp_code") or "")
        except LoginFailed as exc:
            return self._totp_form(oauth, params, authz, pending=params.get("pending") or "",
                                   error=str(exc), status=429 if exc.throttled else 401)
        return await self._complete(oauth, authz, user, ACR_MFA, (AMR_PASSWORD, AMR_OTP))

    async def _complete(self, oauth: OAuthRequest, authz: AuthorizationRequest, user: User,
                        acr: str, amr: tuple[str, ...], *,
                        upstream: UpstreamSession | None = None) -> Response:
        """Re-authenticate in the browser's session of this user, else open a new one;
        then issue the code. The session cookie is new either way."""
        current = await self._id.login.session_for_cookie(self._session_cookie(oauth))
        renewed = None
        if current is not None and current.user_id == user.user_id:
            renewed = await self._id.login.reauthenticate(current, acr=acr, amr=amr,
                                                          upstream=upstream)
        if renewed is None:
            try:
                renewed = await self._id.login.open_session(
                    user, user_agent=oauth.headers.get("user-agent"), acr=acr, amr=amr,
                    client_address=oauth.client_host, upstream=upstream)
            except SessionLimitReached as exc:
                return page("notice.html", 403, title="Too many sessions",
                            heading="Too many sessions", error=None, link=None,
                            message=str(exc))
        session, handle = renewed
        response = await self.consent.finish(oauth, authz, session, handle)
        self._set_cookie(response, SESSION_COOKIE, handle)
        return response

    # /logout ----------------------------------------------------------------------------
    async def logout(self, request: Request) -> Response:
        try:
            oauth = await read_request(request, max_body=self._max_body)
            params = parse_params(oauth, max_body=self._max_body, allow_query=True)
            plan = await self._id.logout.parse(params)
            browser = await self._id.login.session_for_cookie(self._session_cookie(oauth))
            if plan.sid is not None and browser is not None and browser.sid == plan.sid:
                await self._id.logout.end_session(plan.sid, actor="rp")
            elif plan.sid is not None or browser is not None:
                fields = {k: v for k, v in params.as_dict().items() if k in _LOGOUT_FIELDS}
                transaction = fingerprint(fields | {"sid": browser.sid if browser else ""})
                if not (request.method == "POST" and params.get("confirm") == "yes"
                        and self._csrf_ok(oauth, params, "logout", transaction)):
                    return self._logout_form(oauth, fields, transaction)
                for sid in {plan.sid, browser.sid if browser else None} - {None}:
                    assert sid is not None
                    await self._id.logout.end_session(sid, actor="user")
            done: Response = (RedirectResponse(plan.redirect_to, 303) if plan.redirect_to
                              else _html(logged_out_page()))
            self._cookies.delete(done, SESSION_COOKIE)
            return done
        except OAuthError as exc:
            return _html(error_page(exc.description), exc.status)
        except StoreError:
            return _html(error_page("The service is briefly unavailable. Try again."), 503)

    def _logout_form(self, oauth: OAuthRequest, fields: dict[str, str], transaction: str
                     ) -> Response:
        """Ask before ending anything: no hint, or a hint that is not this browser's."""
        csrf, fresh = self._with_csrf_cookie(oauth, "logout", transaction)
        response = _html(logout_page(fields=fields, csrf=csrf))
        if fresh:
            self._set_cookie(response, CSRF_COOKIE, fresh)
        return response
