"""The gateway's ASGI app (Starlette): the decision endpoints, ``/healthz``, ``/metrics``.

==========================  ==========================================================
route                       what
==========================  ==========================================================
``/forward-auth``           nginx ``auth_request`` and Traefik ``forwardAuth`` (any method)
``/ext-authz/<path>``       Envoy ``ext_authz`` HTTP service (``path_prefix: /ext-authz``)
``GET /healthz``            200 ``{"status": "ok", ...}`` (revocation lag for information):
                            liveness, the process answers
``GET /readyz``             200 ``{"status": "ready"}`` once the verifier has loaded the
                            JWKS and its first revocation snapshot, else 503 with
                            ``missing``: readiness (probes, load balancers)
``GET /metrics``            Prometheus text: the SDK's metrics and the gateway's
==========================  ==========================================================

``app.state.tessera_gateway`` is the ``Authorizer`` (its ``service`` the verifier).
The lifespan starts the verifier (JWKS, revocation feed; waits up to
``startup_wait`` for the first snapshot) and closes it and the exchange client.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator

import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tessera.core.clock import Clock
from tessera.gateway.authorizer import Authorizer
from tessera.gateway.exchange import TokenExchanger
from tessera.gateway.forward_auth import (
    EXT_AUTHZ_PREFIX,
    FORWARD_AUTH_PATH,
    ExtAuthzEndpoint,
    ForwardAuthEndpoint,
)
from tessera.gateway.policy import Policy
from tessera.gateway.settings import GatewaySettings
from tessera.verifier.metrics import metrics_app
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings

__all__ = ["GatewayConfigError", "build_app", "create_gateway"]


class GatewayConfigError(ValueError):
    """Settings and policy do not fit together (the message says how)."""


def create_gateway(policy: Policy, settings: VerifierSettings,
                   gateway_settings: GatewaySettings | None = None, *,
                   clock: Clock | None = None,
                   transport: httpx.AsyncBaseTransport | None = None,
                   registry: CollectorRegistry | None = None) -> Starlette:
    """The app from settings: a ``VerifierService`` and, when a route has ``exchange_to``,
    a ``TokenExchanger`` authenticated as the verifier's client. ``transport`` serves
    every HTTP call (tests)."""
    gateway_settings = gateway_settings or GatewaySettings()
    service = VerifierService(settings, clock=clock, transport=transport, registry=registry)
    exchanger = None
    if policy.exchange_targets:
        if not (settings.client_id and settings.client_secret):
            raise GatewayConfigError(
                "routes with exchange_to need the gateway's client: set "
                "TESSERA_VERIFIER_CLIENT_ID and TESSERA_VERIFIER_CLIENT_SECRET")
        exchanger = TokenExchanger(
            gateway_settings.token_endpoint or f"{settings.base_url}/token",
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(), clock=service.clock,
            transport=transport, timeout=gateway_settings.exchange_timeout,
            max_entries=gateway_settings.exchange_cache_size,
            refresh_margin=gateway_settings.exchange_refresh_margin)
    return build_app(Authorizer(service, policy, exchanger=exchanger))


def build_app(authorizer: Authorizer) -> Starlette:
    service = authorizer.service

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.aclose()
            if authorizer.exchanger is not None:
                await authorizer.exchanger.aclose()

    async def healthz(request: Request) -> JSONResponse:
        lag = service.lag()
        return JSONResponse({"status": "ok", "routes": len(authorizer.policy.rules),
                             "revocation_lag_seconds": None if math.isinf(lag) else lag,
                             "stale": service.is_stale()},
                            headers={"cache-control": "no-store"})

    async def readyz(request: Request) -> JSONResponse:
        missing = service.readiness()
        return JSONResponse({"status": "unavailable", "missing": missing} if missing
                            else {"status": "ready"}, 503 if missing else 200,
                            headers={"cache-control": "no-store"})

    routes = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_app(service.registry)),
    ]
    middleware = [Middleware(_DecisionRoutes, forward_auth=ForwardAuthEndpoint(authorizer),
                             ext_authz=ExtAuthzEndpoint(authorizer))]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.tessera_gateway = authorizer
    return app


class _DecisionRoutes:
    """Sends ``/forward-auth`` and everything under ``/ext-authz`` straight to the
    decision endpoints, before Starlette's router: any method, any path bytes (the
    router's patterns would answer 404/405 for some), and less work per request."""

    def __init__(self, app: ASGIApp, *, forward_auth: ASGIApp, ext_authz: ASGIApp) -> None:
        self._app = app
        self._forward_auth = forward_auth
        self._ext_authz = ext_authz

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == FORWARD_AUTH_PATH:
                await self._forward_auth(scope, receive, send)
                return
            if path.startswith(EXT_AUTHZ_PREFIX) and (
                    len(path) == len(EXT_AUTHZ_PREFIX) or path[len(EXT_AUTHZ_PREFIX)] == "/"):
                await self._ext_authz(scope, receive, send)
                return
        await self._app(scope, receive, send)
