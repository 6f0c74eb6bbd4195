"""The demo's two resource servers, built only from the public verifier SDK.

``uvicorn tessera.demo.services:create_app --factory`` with ``TESSERA_DEMO_SERVICE`` =
``orders`` or ``billing`` and the usual ``TESSERA_VERIFIER_*`` settings.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.verifier.asgi import RouteRule, VerifierMiddleware
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings

__all__ = ["create_app"]

_SCOPES = {"orders": "orders:read", "billing": "billing:read"}


def create_app() -> Any:
    name = os.environ.get("TESSERA_DEMO_SERVICE", "orders")
    service = VerifierService(VerifierSettings(service_name=name))

    async def resource(request: Request) -> JSONResponse:
        token = request.state.tessera_token
        return JSONResponse({"service": name, "user_id": token.sub, "tenant_id": token.tid,
                             "audience": list(token.aud), "scope": sorted(token.scopes),
                             "acting_party": (token.act or {}).get("sub")})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app = Starlette(routes=[Route("/healthz", health), Route(f"/{name}", resource)],
                    lifespan=service.lifespan)
    app.add_middleware(VerifierMiddleware, service=service, public=["/healthz"],
                       routes=[RouteRule(f"/{name}", scopes=frozenset({_SCOPES[name]}))])
    return app
