"""The identity service's HTTP binding (Starlette). Routes convert and delegate; the
protocol objects in ``compose`` do the work. Every error is JSON without internals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from tessera.bus import BusGap
from tessera.core.revocation import RevocationKind
from tessera.core.roles import ADMIN_SCOPE
from tessera.core.worker import wait_event
from tessera.identity.account import AccountEndpoints
from tessera.identity.admin_api import AdminApi
from tessera.identity.browser import BrowserEndpoints
from tessera.identity.compose import Identity, build_identity
from tessera.identity.device import DevicePage
from tessera.identity.health import readiness_endpoint
from tessera.identity.http import read_asgi, read_request, send, send_asgi, send_error
from tessera.identity.invalidation import forget_on_revocation
from tessera.identity.maintenance import run_maintenance
from tessera.identity.openapi import OPENAPI_PATH, DocumentContext, build_document
from tessera.observability.logging import configure_logging
from tessera.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tessera.observability.scrape import ScrapeRefused, authorize_scrape
from tessera.observability.tracing import TracingMiddleware, configure_tracing, traced
from tessera.protocol.errors import OAuthError
from tessera.protocol.http import OAuthRequest, OAuthResponse, error_response, json_response
from tessera.protocol.rfc8414 import server_metadata
from tessera.settings import Settings
from tessera.store.ports import StoreError

__all__ = ["ADMIN_SCOPE", "IdentityService", "ProtocolRoutes", "build_app", "create_app"]

_log = logging.getLogger("tessera.identity")
Endpoint = Callable[[OAuthRequest], Awaitable[OAuthResponse]]


def _protocol_route(identity: Identity, endpoint: Endpoint) -> Callable[[Request], Any]:
    max_body = identity.settings.security.max_body_bytes

    async def handle(request: Request) -> Response:
        try:
            return send(await endpoint(await read_request(request, max_body=max_body)))
        except OAuthError as exc:
            return send_error(exc)

    return handle


class ProtocolRoutes:
    """The POST protocol endpoints (token, introspection, revocation, …) on the hot path:
    a pure ASGI layer in front of the Starlette app (inside ``TracingMiddleware``,
    ``IdentityApp``) that answers ``POST`` to those paths itself — the same conversion
    (``read_asgi``/``send_asgi``: the same checks as ``read_request``/``send``) — without
    Starlette's middleware, router, ``Request`` and ``Response`` objects (~15% of a token
    request's CPU, and the server-error middleware's wrapper around every ``send``).
    Anything else, other methods on the same paths included (405, ``GET /userinfo``),
    goes on to Starlette. An unexpected exception is answered as Starlette's server-error
    handler answers it (logged, a JSON 500) and re-raised to the server. The matched
    ``Route`` is put in the scope, so the server span is named as the router would name
    it."""

    def __init__(self, app: Any, routes: dict[str, tuple[Route, Endpoint]], *,
                 max_body: int) -> None:
        self.app = app
        self._routes = routes
        self._max_body = max_body

    async def __call__(self, scope: Any, receive: Any, send_: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send_)
            return
        found = self._routes.get(scope["path"])
        if found is None:
            await self.app(scope, receive, send_)
            return
        route, endpoint = found
        scope["route"] = route
        try:
            response = await endpoint(await read_asgi(scope, receive,
                                                      max_body=self._max_body))
        except OAuthError as exc:
            response = error_response(exc)
        except Exception as exc:
            _log.exception("unhandled error", exc_info=exc)
            await send_asgi(send_, server_error_response())
            raise
        await send_asgi(send_, response)


def server_error_response() -> OAuthResponse:
    """The answer to an unexpected exception: no internals, not cached."""
    return json_response({"error": "server_error"}, status=500)


class IdentityApp(Starlette):
    """The identity service's Starlette app with tracing and the hot protocol routes in
    front of it (``TracingMiddleware`` → ``ProtocolRoutes`` → Starlette's own stack), so
    a token request passes through two ASGI layers instead of five."""

    def __init__(self, *, hot: dict[str, tuple[Route, Endpoint]], max_body: int,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front = TracingMiddleware(ProtocolRoutes(super().__call__, hot,
                                                       max_body=max_body))

    async def __call__(self, scope: Any, receive: Any, send_: Any) -> None:
        await self._front(scope, receive, send_)


async def _watch_rotations(identity: Identity, rotated: asyncio.Event) -> None:
    """Set ``rotated`` when a ``key.rotated`` event reaches this process's bus."""
    while True:
        try:
            async for batch in identity.bus.follow(await identity.bus.last_seq()):
                if any(e.kind == RevocationKind.KEY_ROTATED for e in batch):
                    rotated.set()
        except BusGap:
            continue


async def _keep_keys_fresh(identity: Identity) -> None:
    """Pick up rotations made by other processes (``tessera keys rotate``, other workers):
    at once when the rotation's outbox event arrives, else every ``reload_seconds``."""
    rotated = asyncio.Event()
    watcher = asyncio.get_running_loop().create_task(_watch_rotations(identity, rotated))
    seen = await identity.key_manager.fingerprint()
    try:
        while True:
            await wait_event(rotated, identity.settings.keys.reload_seconds)
            rotated.clear()
            try:
                current = await identity.key_manager.fingerprint()
                if current != seen:
                    await identity.reload_keys()
                    seen = current
                    _log.info("key ring reloaded: active kid %s",
                              identity.keys.ring.active.kid)
            except StoreError as exc:
                _log.warning("key ring reload failed, keeping the current ring: %s", exc)
    finally:
        watcher.cancel()


def build_app(identity: Identity) -> IdentityApp:
    browser = BrowserEndpoints(identity)
    account = AccountEndpoints(identity)
    settings = identity.settings
    metadata = server_metadata(settings.issuer, grant_types=identity.token.grant_types,
                               signing_alg=identity.keys.ring.active.alg, scopes=[],
                               id_token_algs=[identity.keys.ring.active_for(
                                   identity.id_tokens.alg).alg],
                               dpop_algs=identity.dpop.algorithms if identity.dpop else None,
                               device_authorization=identity.device_authorization is not None)

    if identity.signals is not None:  # issue 12: docs/signals.md
        metadata.update(backchannel_logout_supported=True,
                        backchannel_logout_session_supported=True,
                        global_token_revocation_endpoint=f"{settings.issuer}/global-token-revocation")

    async def discovery(_: Request) -> Response:
        return JSONResponse(metadata, headers={"cache-control": "public, max-age=300"})

    async def jwks(_: Request) -> Response:
        return JSONResponse(identity.keys.ring.jwks(),
                            headers={"cache-control": "public, max-age=60"})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    scrape_token = settings.metrics.token.get_secret_value() if settings.metrics.token else None

    async def metrics(request: Request) -> Response:
        """Prometheus text; who may scrape: ``observability.scrape`` (docs/metrics.md)."""
        try:
            authorize_scrape(request.headers.get("authorization"), token=scrape_token,
                             open_=settings.metrics.public)
        except ScrapeRefused as exc:
            headers = {"cache-control": "no-store"}
            if exc.challenge:
                headers["www-authenticate"] = exc.challenge
            return JSONResponse({"error": exc.error, "error_description": exc.description},
                                exc.status, headers=headers)
        return Response(identity.metrics.render(), media_type=METRICS_CONTENT_TYPE,
                        headers={"cache-control": "no-store"})

    document = build_document(DocumentContext(
        issuer=settings.issuer, grant_types=tuple(identity.token.grant_types),
        dpop=identity.dpop is not None, console=settings.console.enabled,
        federation=settings.federation.enabled,
        metrics=settings.metrics.port is None, metrics_token=scrape_token is not None,
        device=identity.device_authorization is not None,
        signals=identity.signals is not None))

    async def openapi(_: Request) -> Response:
        return JSONResponse(document, headers={"cache-control": "public, max-age=300"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(_keep_keys_fresh(identity)),
                 loop.create_task(run_maintenance(identity)),
                 loop.create_task(forget_on_revocation(identity)),
                 loop.create_task(identity.mirror.run())]
        if settings.federation.enabled:  # RFC 8936 poll of --ssf-poll-url transmitters
            from tessera.identity.federation.poll import SsfPoller

            tasks.append(loop.create_task(SsfPoller(
                identity.federation, interval=settings.federation.ssf_poll_seconds,
                on_failure=lambda _: identity.metrics.federation_failures.labels(
                    "unavailable").inc()).run()))
        identity.start_relays()
        identity.metrics.worker_started()
        try:
            yield
        finally:
            identity.metrics.worker_stopped()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await identity.aclose()

    protocol: dict[str, Endpoint] = {
        "/token": traced("token.issue", identity.token.handle),
        "/introspect": identity.introspection.handle,
        "/revoke": traced("token.revoke", identity.revocation.handle),
    }
    if identity.device_authorization is not None:  # RFC 8628 (docs/sessions.md)
        protocol["/device_authorization"] = identity.device_authorization.handle
    fast = {path: Route(path, _protocol_route(identity, endpoint), methods=["POST"])
            for path, endpoint in protocol.items()}
    routes: list[BaseRoute] = [
        Route("/.well-known/openid-configuration", discovery),
        Route("/.well-known/oauth-authorization-server", discovery),
        Route("/jwks", jwks),
        Route("/healthz", health),
        Route("/readyz", readiness_endpoint(identity.store), methods=["GET", "HEAD"]),
        Route(OPENAPI_PATH, openapi),
        *fast.values(),
        Route("/userinfo", _protocol_route(identity, identity.userinfo.handle),
              methods=["GET", "POST"]),
        Route("/authorize", browser.authorize, methods=["GET", "POST"]),
        Route("/logout", browser.logout, methods=["GET", "POST"]),
        Route("/authorize/consent", browser.consent.submit, methods=["POST"]),
        Route("/account", account.overview),
        Route("/account/password", account.password, methods=["GET", "POST"]),
        Route("/account/totp", account.totp, methods=["GET", "POST"]),
        Route("/account/sessions", account.sessions, methods=["GET", "POST"]),
        Route("/admin/sessions", AdminApi(identity).sessions, methods=["POST"]),
        Route("/revocations", identity.feed.events_after),
        Route("/revocations/snapshot", identity.feed.snapshot),
        Route("/revocations/events", identity.feed.events),
        Route("/revocations/acks", identity.feed.acks, methods=["POST"]),
    ]
    if settings.federation.enabled:  # upstream identity providers (docs/federation.md)
        from tessera.identity.federation.endpoints import FederationEndpoints

        fed = FederationEndpoints(identity, browser)
        routes += [
            Route("/federation/{idp_id}/start", fed.start),
            Route("/federation/{idp_id}/callback", fed.callback),
            Route("/federation/{idp_id}/backchannel-logout", fed.backchannel_logout,
                  methods=["POST"]),
            Route("/federation/{idp_id}/ssf/push", fed.ssf_push, methods=["POST"]),
        ]
    if identity.device_authorization is not None:  # RFC 8628 (docs/sessions.md)
        routes.append(Route("/device", DevicePage(identity).handle, methods=["GET", "POST"]))
    if identity.signals is not None:  # back-channel logout, SSF, global revocation
        from tessera.identity.signals.global_revocation import (
            GLOBAL_REVOCATION_PATH,
            GlobalRevocation,
        )
        from tessera.identity.signals.ssf_api import ssf_routes

        routes.extend(ssf_routes(identity.signals))
        routes.append(Route(GLOBAL_REVOCATION_PATH, GlobalRevocation(identity).handle,
                            methods=["POST"]))
    if settings.metrics.port is None:  # else the supervisor's listener serves it
        routes.append(Route("/metrics", metrics))
    if settings.console.enabled:  # the admin web console (docs/console.md)
        from tessera.console import console_routes

        routes.append(Mount("/console", routes=console_routes(identity)))

    async def http_error(_: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        error = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
        headers = {"cache-control": "no-store"}
        if isinstance(exc, HTTPException) and exc.headers and "Allow" in exc.headers:
            headers["allow"] = exc.headers["Allow"]  # RFC 9110 §15.5.6
        return JSONResponse({"error": error}, status_code=status, headers=headers)

    async def server_error(_: Request, exc: Exception) -> Response:
        _log.exception("unhandled error", exc_info=exc)
        return send(server_error_response())

    hot = {path: (route, protocol[path]) for path, route in fast.items()}
    return IdentityApp(hot=hot, max_body=settings.security.max_body_bytes, routes=routes,
                       lifespan=lifespan,
                       exception_handlers={HTTPException: http_error, Exception: server_error})


class IdentityService:
    """ASGI app for uvicorn (``tessera.identity.app:create_app``, factory): the identity
    is built during lifespan startup, inside the server's event loop."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._app: Starlette | None = None
        self._identity: Identity | None = None

    @property
    def metrics_registry(self) -> CollectorRegistry | None:
        """This process's metrics once started (the supervisor's metrics port reads it)."""
        return self._identity.metrics.registry if self._identity is not None else None

    async def __call__(self, scope: Any, receive: Any, send_: Any) -> None:
        if scope["type"] == "lifespan" and self._app is None:
            configure_logging()  # this may be a freshly spawned worker process
            settings = self._settings or Settings()
            configure_tracing("tessera-identity", settings=settings.tracing)
            self._identity = await build_identity(settings)
            self._app = build_app(self._identity)
        if self._app is None:
            raise RuntimeError("the identity service has not started")
        await self._app(scope, receive, send_)


def create_app() -> IdentityService:
    return IdentityService()
