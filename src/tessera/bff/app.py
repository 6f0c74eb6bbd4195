"""The BFF's ASGI app (Starlette).

==============================  =========================================================
route                           what
==============================  =========================================================
``GET /bff/login``              303 to the identity service's authorization endpoint
                                (``?return_to=/local/path`` optional); sets the login
                                cookie
``GET /bff/callback``           the redirect URI: completes the login, sets the session
                                cookie, 303 to ``return_to``; 400 page on a bad callback
``GET /bff/session``            200 ``{"authenticated": true, "sub", "claims", "scope",
                                "expires_at"}`` or 401 ``{"authenticated": false}``
``POST /bff/logout``            revokes the tokens, ends the session, 200
                                ``{"logged_out", "revoked", "logout_url"}``: the SPA sends
                                the browser to ``logout_url`` (end-session)
``* /bff/api/<route>/<path>``   proxied to the route's upstream with the access token
``GET /healthz``                200 ``{"status": "ok"}``
``/`` (``static_dir``)          the single-page app, when configured
==============================  =========================================================

CSRF (every ``/bff/session``, ``/bff/logout`` and ``/bff/api/`` request): the
``X-Tessera-BFF: 1`` header must be present — a cross-site page cannot send a custom
header without a CORS preflight, and the BFF answers none — and ``Origin``, when the
browser sends one, must be the BFF's own (``public_url`` or ``allowed_origins``); a
state-changing method without ``Origin`` must come with ``Sec-Fetch-Site: same-origin``.
Otherwise 403 ``{"error": "csrf_check_failed"}``. The session cookie is ``SameSite=Strict``
besides.

Errors are JSON ``{"error", "error_description"}`` (RFC 6749 §5.2 style) with 400, 401,
403, 404, 413, 502, 503 or 504; never a stack trace, never a token.
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import AsyncIterator
from typing import Final

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tessera.bff.cookies import LOGIN_COOKIE, SESSION_COOKIE, CookieJar
from tessera.bff.oidc_client import IdentityUnavailable
from tessera.bff.proxy import ProxyError, UpstreamProxy
from tessera.bff.sessions import LoginFailed, SessionManager
from tessera.bff.settings import CSRF_HEADER, BffSettings, origin_of
from tessera.bff.vault import VaultUnavailable

__all__ = ["build_app"]

_log = logging.getLogger("tessera.bff")
_SAFE: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_NO_STORE: Final = {"cache-control": "no-store", "pragma": "no-cache"}


def _error(status: int, error: str, description: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description, **extra},
                        status, headers=_NO_STORE)


class CsrfRefused(Exception):
    pass


def check_csrf(request: Request, settings: BffSettings) -> None:
    """One rule, one place: the custom header and the origin (module docstring)."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise CsrfRefused(f"the {CSRF_HEADER} header is required")
    origin = request.headers.get("origin")
    if origin is not None:
        claimed = origin_of(origin)
        if not claimed or claimed not in settings.origins:
            raise CsrfRefused("the request comes from another origin")
    elif request.method not in _SAFE \
            and request.headers.get("sec-fetch-site") not in ("same-origin", None):
        raise CsrfRefused("the request comes from another site")


def build_app(settings: BffSettings, sessions: SessionManager, proxy: UpstreamProxy,
              cookies: CookieJar) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if sessions.revocations is not None:
            await sessions.revocations.start()
        try:
            yield
        finally:
            if sessions.revocations is not None:
                await sessions.revocations.aclose()
            await proxy.aclose()
            await sessions.client.aclose()
            await sessions.vault.vault.aclose()

    async def login(request: Request) -> Response:
        try:
            url, handle = await sessions.start_login(request.query_params.get("return_to"))
        except (IdentityUnavailable, VaultUnavailable) as exc:
            _log.warning("bff login: %s", exc)
            return _page(503, "Sign-in is briefly unavailable. Try again shortly.")
        response = RedirectResponse(url, 303, headers=_NO_STORE)
        cookies.set_login(response, handle)
        return response

    async def callback(request: Request) -> Response:
        params = {k: v for k, v in request.query_params.items()}
        try:
            handle, return_to = await sessions.complete_login(
                cookies.read_login(request), params)
        except LoginFailed as exc:
            failed = _page(400, f"Sign-in failed: {exc.description}.", error=exc.error)
            cookies.delete(failed, LOGIN_COOKIE)
            return failed
        except (IdentityUnavailable, VaultUnavailable) as exc:
            _log.warning("bff callback: %s", exc)
            return _page(503, "Sign-in is briefly unavailable. Try again shortly.")
        with contextlib.suppress(VaultUnavailable):  # else it expires on its own
            await sessions.forget(cookies.read_session(request))  # the one it replaces
        response = RedirectResponse(return_to, 303, headers=_NO_STORE)
        cookies.delete(response, LOGIN_COOKIE)
        cookies.set_session(response, handle)
        return response

    async def session(request: Request) -> Response:
        try:
            check_csrf(request, settings)
            opened = await sessions.open(cookies.read_session(request))
        except CsrfRefused as exc:
            return _error(403, "csrf_check_failed", str(exc))
        except (IdentityUnavailable, VaultUnavailable) as exc:
            _log.warning("bff session: %s", exc)
            return _error(503, "temporarily_unavailable", "try again shortly")
        if opened is None:
            response = _error(401, "unauthenticated", "no session: sign in at /bff/login",
                              authenticated=False)
            if SESSION_COOKIE in request.cookies:
                cookies.delete(response, SESSION_COOKIE)
            return response
        s = opened.session
        return JSONResponse({"authenticated": True, "sub": s.sub, "claims": s.claims,
                             "scope": s.scope, "expires_at": int(s.absolute_expiry)},
                            headers=_NO_STORE)

    async def logout(request: Request) -> Response:
        try:
            check_csrf(request, settings)
            result = await sessions.logout(cookies.read_session(request))
        except CsrfRefused as exc:
            return _error(403, "csrf_check_failed", str(exc))
        except VaultUnavailable as exc:
            _log.warning("bff logout: %s", exc)
            return _error(503, "temporarily_unavailable", "try again shortly")
        response = JSONResponse(result, headers=_NO_STORE)
        cookies.delete(response, SESSION_COOKIE)
        return response

    async def api(request: Request) -> Response:
        route, path = request.path_params["route"], request.path_params["path"]
        try:
            check_csrf(request, settings)
            url = proxy.target(route, path, request.url.query)
            opened = await sessions.open(cookies.read_session(request))
            if opened is None:
                return _error(401, "unauthenticated", "no session: sign in at /bff/login")
            body = await _read_body(request, settings.max_body_bytes)
            response = await proxy.forward(
                route=route, url=url, method=request.method,
                headers={k.lower(): v for k, v in request.headers.items()}, body=body,
                access_token=opened.session.access_token,
                token_type=opened.session.token_type, signer=opened.signer)
            if response.status_code == 401:
                await sessions.recheck_soon(opened)
            return response
        except CsrfRefused as exc:
            return _error(403, "csrf_check_failed", str(exc))
        except ProxyError as exc:
            return _error(exc.status, exc.error, exc.description)
        except (IdentityUnavailable, VaultUnavailable) as exc:
            _log.warning("bff api: %s", exc)
            return _error(503, "temporarily_unavailable", "try again shortly")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=_NO_STORE)

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    routes: list[Route | Mount] = [
        Route("/bff/login", login, methods=["GET"]),
        Route("/bff/callback", callback, methods=["GET"]),
        Route("/bff/session", session, methods=["GET"]),
        Route("/bff/logout", logout, methods=["POST"]),
        Route("/bff/api/{route}/{path:path}", api, methods=methods),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
    ]
    if settings.static_dir:
        routes.append(Mount("/", StaticFiles(directory=settings.static_dir, html=True)))
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(_SecurityHeaders)])
    app.state.tessera_bff = sessions
    return app


class _SecurityHeaders:
    """On every answer (the SPA's files included): no framing (clickjacking of the app's
    buttons), no MIME sniffing, the referrer kept on this origin. A page's own CSP (a
    ``<meta>`` in the SPA) cannot forbid framing, hence the header."""

    _HEADERS: Final = ((b"x-frame-options", b"DENY"),
                       (b"content-security-policy", b"frame-ancestors 'none'"),
                       (b"x-content-type-options", b"nosniff"),
                       (b"referrer-policy", b"same-origin"))

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in self._HEADERS if h[0] not in present)]
            await send(message)

        await self._app(scope, receive, with_headers)


class _TooLarge(ProxyError):
    def __init__(self) -> None:
        super().__init__(413, "invalid_request", "the request body is too large")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _page(status: int, message: str, *, error: str | None = None) -> HTMLResponse:
    code = f"<p><code>{html.escape(error)}</code></p>" if error else ""
    body = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Sign-in"
            f"</title></head><body><h1>{html.escape(message)}</h1>{code}"
            f"<p><a href='/'>Back to the application</a></p></body></html>")
    return HTMLResponse(body, status, headers=_NO_STORE)
