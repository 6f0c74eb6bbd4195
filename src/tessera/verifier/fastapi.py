"""FastAPI dependencies: a route states what it needs, the dependency decides and returns
the ``VerifiedToken`` (or refuses with RFC 6750 401/403, or 503 when it cannot decide).

::

    @app.get("/orders")
    async def orders(token: VerifiedToken = Depends(require_scopes("orders:read"))): ...

    @app.post("/payouts")   # RFC 9470: step up to MFA within the last 5 minutes
    async def payout(token: VerifiedToken = Depends(
        require_acr("urn:tessera:acr:mfa", max_auth_age=300, scopes=["payouts"]))): ...

The ``VerifierService`` is found in ``request.state`` (put there by ``VerifierMiddleware``)
or ``app.state`` (by ``service.lifespan`` / ``install(app, service)``). ``install``
also makes refusals flat OAuth error JSON (``{"error", "error_description"}``); without
it FastAPI's own handler nests that object under ``detail`` (same status and headers).

Each dependency records one decision. When the middleware (or an earlier dependency)
already recorded ``access.allowed`` for the request, a later one records only a denial.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Depends, HTTPException, Request
from starlette.responses import Response

from tessera.verifier._bearer import denial_response
from tessera.verifier._token import VerifiedToken
from tessera.verifier.asgi import ALLOWED_KEY, SERVICE_KEY, TOKEN_KEY
from tessera.verifier.decisions import correlation_id_from
from tessera.verifier.dpop import BEARER, credentials, mark_checked, presentation_from_scope
from tessera.verifier.errors import Denied, Reason
from tessera.verifier.service import Attempt, VerifierService

__all__ = [
    "BearerChallenge",
    "challenge_handler",
    "install",
    "require_acr",
    "require_owner",
    "require_scopes",
    "require_strict",
    "require_tenant",
    "require_token",
    "service_of",
]

Dependency = Callable[..., Awaitable[VerifiedToken]]


class BearerChallenge(HTTPException):
    """A refusal as an ``HTTPException``: status and headers of RFC 6750 §3, the OAuth
    error object as ``detail`` (never the token, never the debug ``detail``)."""

    def __init__(self, denied: Denied, scopes: Iterable[str] = (), *,
                 dpop_algs: str | None = None) -> None:
        status, headers, body = denial_response(denied, scopes=scopes, dpop_algs=dpop_algs)
        self.body = body
        super().__init__(status, detail={"error": denied.error,
                                         "error_description": denied.description},
                         headers={k: v for k, v in headers if k != "content-type"})


def install(app: Any, service: VerifierService) -> None:
    """Register ``service`` on a FastAPI ``app`` (``app.state``) and the handler that sends
    refusals as flat OAuth error JSON. Call before the app starts."""
    service.install(app)
    app.add_exception_handler(BearerChallenge, challenge_handler)


async def challenge_handler(_request: Request, exc: Exception) -> Response:
    """Exception handler sending a ``BearerChallenge`` as flat OAuth error JSON."""
    assert isinstance(exc, BearerChallenge)
    return Response(exc.body, exc.status_code, headers=exc.headers,
                    media_type="application/json")


def service_of(request: Request) -> VerifierService:
    service = request.scope.get("state", {}).get(SERVICE_KEY)
    if service is None:
        service = getattr(request.app.state, SERVICE_KEY, None)
    if not isinstance(service, VerifierService):
        raise RuntimeError("no VerifierService: pass lifespan=service.lifespan, call "
                           "install(app, service) or add VerifierMiddleware")
    return service


async def _verify(request: Request, scopes: frozenset[str], strict: bool | None, *,
                  min_acr: str | None = None, max_auth_age: int | None = None,
                  accept_stale: bool = False) -> Attempt:
    """Verify the request's token (Bearer, or DPoP with its proof); every refusal is
    recorded and raised."""
    route = request.scope.get("route")
    service = service_of(request)
    attempt = service.attempt(
        route=getattr(route, "path", None) or request.url.path,
        correlation_id=correlation_id_from(request.headers.get("x-request-id")))
    attempt.decided = bool(getattr(request.state, ALLOWED_KEY, False))
    scheme = BEARER
    try:
        try:
            values = request.headers.getlist("authorization")
            if len(values) > 1:
                raise Denied(Reason.MALFORMED, "more than one Authorization header")
            scheme, raw = credentials(values[0] if values else None)
        except Denied as denied:
            attempt.deny(denied)
            raise
        presentation = presentation_from_scope(request.scope, scheme, raw,
                                               public_url=service.settings.dpop_public_url)
        await attempt.verify(raw, scopes=scopes, strict=strict, min_acr=min_acr,
                             max_auth_age=max_auth_age, presentation=presentation,
                             accept_stale=accept_stale)
        mark_checked(request.scope, raw, presentation)
    except Denied as denied:
        raise BearerChallenge(denied, scopes,
                              dpop_algs=service.dpop.challenge_algs(denied, scheme)) from None
    return attempt


def _allow(request: Request, attempt: Attempt) -> VerifiedToken:
    token = attempt.allow()
    setattr(request.state, TOKEN_KEY, token)
    setattr(request.state, ALLOWED_KEY, True)
    return token


def require_scopes(*scopes: str, strict: bool | None = None,
                   accept_stale: bool = False) -> Dependency:
    """A valid token granting every one of ``scopes`` (403 ``insufficient_scope`` if not);
    ``strict=True`` applies the tighter staleness bound (503 or introspection when
    stale); ``accept_stale=True`` (never with ``strict``) accepts past the ordinary bound,
    logged and counted as ``stale_accepted``."""
    if strict and accept_stale:
        raise ValueError("a strict route cannot accept_stale")
    wanted = frozenset(scopes)

    async def dependency(request: Request) -> VerifiedToken:
        return _allow(request, await _verify(request, wanted, strict,
                                             accept_stale=accept_stale))

    return dependency


def require_acr(min_acr: str | None = None, *, max_auth_age: int | None = None,
                scopes: Iterable[str] = (), strict: bool | None = None) -> Dependency:
    """A valid token whose authentication is at least ``min_acr`` (in the service's
    ``acr_levels``) and at most ``max_auth_age`` seconds old; otherwise 401
    ``insufficient_user_authentication`` with ``acr_values``/``max_age`` (RFC 9470 §3),
    which tells the client what to ask the authorization server for. A ``min_acr`` the
    service's ``acr_levels`` do not list is a programming error (``ValueError`` on the
    first request)."""
    wanted = frozenset(scopes)

    async def dependency(request: Request) -> VerifiedToken:
        return _allow(request, await _verify(request, wanted, strict, min_acr=min_acr,
                                             max_auth_age=max_auth_age))

    return dependency


async def require_token(request: Request) -> VerifiedToken:
    """Any valid token for this service (401 if missing or invalid)."""
    return _allow(request, await _verify(request, frozenset(), None))


async def require_strict(request: Request) -> VerifiedToken:
    """A valid token, checked against fresh revocation state: when the state is older
    than ``strict_max_staleness``, fail closed (503) or introspect, per
    ``strict_fallback``."""
    return _allow(request, await _verify(request, frozenset(), True))


def require_tenant(param: str = "tenant_id", *, scopes: Iterable[str] = (),
                   strict: bool | None = None) -> Dependency:
    """A valid token whose ``tid`` equals the path parameter ``param`` (403 if not)."""
    wanted = frozenset(scopes)

    async def dependency(request: Request) -> VerifiedToken:
        if param not in request.path_params:
            raise RuntimeError(f"require_tenant: the route has no path parameter {param!r}")
        attempt = await _verify(request, wanted, strict)
        try:
            attempt.require(tenant=request.path_params[param])
        except Denied as denied:
            raise BearerChallenge(denied) from None
        return _allow(request, attempt)

    return dependency


def require_owner(owner_of: Callable[..., Any], *, scopes: Iterable[str] = (),
                  strict: bool | None = None) -> Dependency:
    """A valid token whose ``sub`` is the resource owner (403 if not).

    ``owner_of`` is itself a FastAPI dependency (it may take path parameters and other
    dependencies) returning the owner's subject id, or ``None`` (denied). It runs only
    after the token was verified, so a caller without a valid token learns nothing about
    which resources exist.
    """
    wanted = frozenset(scopes)

    async def verified(request: Request) -> Attempt:
        return await _verify(request, wanted, strict)

    # Resolved in parameter order: the token is verified before ``owner_of`` runs.
    # (Plain defaults, not ``Annotated``: these names are local to this function.)
    verified_first, then_owner = Depends(verified), Depends(owner_of)

    async def dependency(request: Request, attempt: Attempt = verified_first,
                         owner: Any = then_owner) -> VerifiedToken:
        try:
            attempt.require(owner=str(owner) if owner is not None else "")
        except Denied as denied:
            raise BearerChallenge(denied) from None
        return _allow(request, attempt)

    return dependency
