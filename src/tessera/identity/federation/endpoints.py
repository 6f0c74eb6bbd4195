"""HTTP binding of federation: the browser's round trip to an upstream provider and the
provider's back channel.

- ``GET /federation/{idp_id}/start?<authorization request>``: the authorization request
  is checked as ``/authorize`` checks it, the provider must serve the client's tenant;
  the browser leaves for the upstream with ``state``, ``nonce`` and PKCE kept in a signed,
  short-lived cookie (``tessera_federation``). A request that needs more than a password
  asks the upstream for ``step_up_acr`` (``acr_values``); ``max_age`` and ``prompt=login``
  travel as they are.
- ``GET /federation/{idp_id}/callback``: ``state`` compared in constant time with the
  cookie's, the code exchanged, the ID token validated, the user found, linked or
  provisioned, the session opened (or re-authenticated) with the upstream session
  recorded in the same transaction; then the authorization request continues.
- ``POST /federation/{idp_id}/backchannel-logout``: OIDC Back-Channel Logout 1.0 (200, or
  400 ``invalid_request`` with the failed check).
- ``POST /federation/{idp_id}/ssf/push``: RFC 8935 push delivery of a SET (202, or 400
  with ``err``/``description``).
An unreachable or slow upstream gets the user a clear page (502), never a 500.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from itsdangerous import BadData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tessera.core.acr import ACR_PASSWORD
from tessera.core.federation import IdentityProvider, UpstreamSession
from tessera.core.users import DEFAULT_TENANT, User
from tessera.identity.cookies import CookiePolicy
from tessera.identity.federation.mapping import ClaimMapping
from tessera.identity.federation.service import FederationError
from tessera.identity.federation.upstream import (
    UpstreamError,
    UpstreamRefused,
    UpstreamUnavailable,
)
from tessera.identity.http import read_request
from tessera.identity.login.csrf import timed_serializer
from tessera.identity.login.pages import error_page
from tessera.identity.views import PAGE_HEADERS
from tessera.observability import events
from tessera.protocol.errors import OAuthError
from tessera.protocol.http import OAuthRequest, Params, parse_params
from tessera.protocol.rfc6749.authorize import (
    AuthorizationRequest,
    RedirectError,
    UserFacingError,
)
from tessera.store.ports import StoreError

if TYPE_CHECKING:
    from tessera.identity.compose import Identity

__all__ = ["FEDERATION_COOKIE", "BrowserLogin", "FederationEndpoints", "start_url"]

_log = logging.getLogger("tessera.federation")
FEDERATION_COOKIE = "tessera_federation"
_MAX_COOKIE = 3500
_SET_TYPES = ("application/secevent+jwt", "secevent+jwt")


def _html(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, headers=PAGE_HEADERS,
                    media_type="text/html; charset=utf-8")


class BrowserLogin(Protocol):
    """What the round trip needs of the browser login (``identity/browser.py``, which
    imports this module: a Protocol here keeps the two from importing each other)."""

    @property
    def cookies(self) -> CookiePolicy: ...

    async def complete_login(self, oauth: OAuthRequest, authz: AuthorizationRequest,
                             user: User, acr: str, amr: tuple[str, ...], *,
                             upstream: UpstreamSession | None = None) -> Response: ...


def start_url(idp_id: str, fields: dict[str, str]) -> str:
    """Where the login page sends the browser to sign in with a provider (relative to
    ``/authorize``, like the login form's own action)."""
    return f"federation/{idp_id}/start?{urlencode(fields)}"


class FederationEndpoints:
    def __init__(self, identity: Identity, browser: BrowserLogin) -> None:
        from tessera.keys.derivation import derive_key

        self._id = identity
        self._fed = identity.federation
        self._browser = browser
        self._max_body = identity.settings.security.max_body_bytes
        self._serializer = timed_serializer(
            derive_key(identity.settings.key_encryption_key(), "federation-state"),
            "tessera-federation-state", identity.clock)
        self._ttl = identity.settings.federation.login_seconds

    async def _provider(self, request: Request) -> IdentityProvider | None:
        idp_id = str(request.path_params.get("idp_id", ""))
        if not idp_id or len(idp_id) > 64:
            return None
        provider = await self._fed.provider(idp_id)
        return provider if provider is not None and not provider.disabled else None

    async def _failed(self, provider: IdentityProvider, exc: Exception) -> Response:
        """An upstream that is down, slow or answering nonsense: a clear page, a metric,
        an audit event and the reason in the log; nothing stored."""
        kind = "unavailable" if isinstance(exc, UpstreamUnavailable) else "refused"
        reason = exc.reason if isinstance(exc, (UpstreamError, FederationError)) else str(exc)
        _log.warning("upstream %s (%s) %s: %s", provider.name, provider.issuer, kind, reason)
        self._id.metrics.federation_failures.labels(kind).inc()
        await self._id.audit.record(events.FEDERATION_UPSTREAM_FAILED, idp=provider.name,
                                    tenant_id=provider.tenant_id, reason=kind,
                                    detail=reason[:200])
        if kind == "unavailable":
            message = (f"The sign-in provider {provider.name} is not responding. Try again "
                       "in a moment, or sign in another way.")
        elif isinstance(exc, FederationError):
            message = exc.user_message
        else:
            message = (f"The answer of the sign-in provider {provider.name} could not be "
                       "verified, so you were not signed in.")
        return _html(error_page(message), 502)

    # the browser's round trip ------------------------------------------------------------
    async def start(self, request: Request) -> Response:
        provider = await self._provider(request)
        if provider is None:
            return _html(error_page("This sign-in provider is not available."), 404)
        try:
            oauth = await read_request(request, max_body=self._max_body)
            params = parse_params(oauth, max_body=self._max_body, allow_query=True)
            authz = await self._id.authorize.parse(params)
            if (authz.client.tenant_id or DEFAULT_TENANT) != provider.tenant_id:
                return _html(error_page("This sign-in provider is not available."), 404)
            mapping = ClaimMapping.model_validate(provider.mapping)
            needs_mfa = self._id.authorize.acr_too_low(authz, ACR_PASSWORD)
            # step-up: the upstream must authenticate again, at the stronger level
            prompt = "login" if needs_mfa or (
                authz.prompt and "login" in authz.prompt.split()) else None
            started = await self._fed.client(provider).start(
                acr_values=mapping.step_up_acr if needs_mfa else None,
                max_age=authz.max_age, prompt=prompt, login_hint=params.get("login_hint"))
        except UserFacingError as exc:
            return _html(error_page(str(exc)), 400)
        except RedirectError as exc:
            return RedirectResponse(exc.location, status_code=303)
        except OAuthError as exc:
            return _html(error_page(exc.description), exc.status)
        except StoreError:
            return _html(error_page("The service is briefly unavailable. Try again."), 503)
        except UpstreamError as exc:
            return await self._failed(provider, exc)
        fields = {k: v for k, v in params.as_dict().items() if k in _FIELDS}
        cookie = str(self._serializer.dumps({
            "i": provider.idp_id, "s": started.state, "n": started.nonce,
            "v": started.code_verifier, "f": fields, "m": authz.max_age}))
        if len(cookie) > _MAX_COOKIE:
            return _html(error_page("This authorization request is too large."), 400)
        response = RedirectResponse(started.url, status_code=303)
        self._browser.cookies.set(response, FEDERATION_COOKIE, cookie)
        return response

    def _pending(self, request: Request, provider: IdentityProvider) -> dict[str, Any] | None:
        value = self._browser.cookies.read(request.cookies, FEDERATION_COOKIE)
        if not value or len(value) > _MAX_COOKIE:
            return None
        try:
            data = self._serializer.loads(value, max_age=self._ttl)
        except BadData:
            return None
        if not isinstance(data, dict) or data.get("i") != provider.idp_id:
            return None
        return data

    async def callback(self, request: Request) -> Response:
        provider = await self._provider(request)
        if provider is None:
            return _html(error_page("This sign-in provider is not available."), 404)
        expired = "Your sign-in expired or was started in another browser. Start again."
        try:
            oauth = await read_request(request, max_body=self._max_body)
            params = parse_params(oauth, max_body=self._max_body, allow_query=True)
        except OAuthError as exc:
            return _html(error_page(exc.description), exc.status)
        pending = self._pending(request, provider)
        state = params.get("state") or ""
        if pending is None or not hmac.compare_digest(state.encode(),
                                                      str(pending["s"]).encode()):
            return _html(error_page(expired), 400)
        if params.get("error"):
            _log.info("upstream %s answered %s", provider.name, params.get("error"))
            return self._done(_html(error_page(
                f"The sign-in provider {provider.name} did not sign you in "
                f"({params.get('error')})."), 400))
        code = params.get("code")
        if not code:
            return self._done(_html(error_page(expired), 400))
        returned_iss = params.get("iss")
        if returned_iss is not None and returned_iss != provider.issuer:  # RFC 9207 mix-up
            return self._done(await self._failed(provider, UpstreamRefused(
                "the authorization response names another issuer (RFC 9207)")))
        try:
            authz = await self._id.authorize.parse(Params(sorted(dict(pending["f"]).items())))
            claims, userinfo = await self._fed.client(provider).finish(
                code=code, code_verifier=str(pending["v"]), nonce=str(pending["n"]),
                max_age=pending.get("m"))
            result = await self._fed.login(provider, claims, userinfo)
            if self._id.authorize.acr_too_low(authz, result.profile.acr):
                return self._done(RedirectResponse(
                    self._id.authorize.unmet_requirements(authz), 303))
            response = await self._browser.complete_login(
                oauth, authz, result.user, result.profile.acr, result.profile.amr,
                upstream=UpstreamSession(sid="", idp_id=provider.idp_id,
                                         subject=result.profile.subject,
                                         upstream_sid=result.upstream_sid))
        except (UpstreamError, FederationError) as exc:
            return self._done(await self._failed(provider, exc))
        except UserFacingError as exc:
            return self._done(_html(error_page(str(exc)), 400))
        except RedirectError as exc:
            return self._done(RedirectResponse(exc.location, status_code=303))
        except OAuthError as exc:
            return self._done(_html(error_page(exc.description), exc.status))
        except StoreError:
            return _html(error_page("The service is briefly unavailable. Try again."), 503)
        return self._done(response)

    def _done(self, response: Response) -> Response:
        self._browser.cookies.delete(response, FEDERATION_COOKIE)
        return response

    # the back channel --------------------------------------------------------------------
    async def backchannel_logout(self, request: Request) -> Response:
        """OIDC Back-Channel Logout 1.0 §2.5/§2.8: 200 when the logout is done, 400 with
        an OAuth error otherwise; never cached."""
        headers = {"cache-control": "no-store"}
        provider = await self._provider(request)
        if provider is None:
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "unknown identity provider"}, 404,
                                headers=headers)
        try:
            oauth = await read_request(request, max_body=self._max_body)
            params = parse_params(oauth, max_body=self._max_body)
            token = params.require("logout_token")
            revoked = await self._fed.logout(provider, token)
        except OAuthError as exc:
            return JSONResponse({"error": exc.error, "error_description": exc.description},
                                exc.status, headers=headers)
        except FederationError as exc:
            _log.warning("logout token from %s refused: %s", provider.name, exc.reason)
            return JSONResponse({"error": "invalid_request",
                                 "error_description": exc.reason}, 400, headers=headers)
        except UpstreamUnavailable as exc:
            self._id.metrics.federation_failures.labels("unavailable").inc()
            _log.warning("logout token from %s: keys unavailable: %s", provider.name,
                         exc.reason)
            return JSONResponse({"error": "temporarily_unavailable",
                                 "error_description": "the provider's keys are unreachable"},
                                503, headers=headers)
        except StoreError:
            return JSONResponse({"error": "temporarily_unavailable"}, 503, headers=headers)
        _log.info("back-channel logout from %s revoked %d sessions", provider.name, revoked)
        return Response(status_code=200, headers=headers)

    async def ssf_push(self, request: Request) -> Response:
        """RFC 8935: the body is one SET (``application/secevent+jwt``); 202 Accepted, or
        400 with ``err`` and ``description`` (§2.3)."""
        headers = {"cache-control": "no-store"}

        def refuse(err: str, description: str, status: int = 400) -> Response:
            return JSONResponse({"err": err, "description": description}, status,
                                headers=headers)

        provider = await self._provider(request)
        if provider is None:
            return refuse("invalid_request", "unknown identity provider", 404)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in _SET_TYPES:
            return refuse("invalid_request", "send one SET as application/secevent+jwt")
        body = await request.body()
        if len(body) > self._max_body:
            return refuse("invalid_request", "the SET is too large")
        try:
            await self._fed.security_event(provider, body.decode("ascii").strip())
        except UnicodeDecodeError:
            return refuse("invalid_request", "the SET is not a compact JWS")
        except FederationError as exc:
            _log.warning("security event from %s refused: %s", provider.name, exc.reason)
            err = "invalid_issuer" if "iss" in exc.reason else \
                "invalid_audience" if "aud" in exc.reason else \
                "invalid_key" if "key" in exc.reason or "signature" in exc.reason else \
                "invalid_request"
            return refuse(err, exc.reason)
        except UpstreamRefused as exc:
            return refuse("invalid_key", exc.reason)
        except UpstreamUnavailable:
            return refuse("invalid_key", "the provider's keys are unreachable", 503)
        except StoreError:
            return refuse("invalid_request", "the service is briefly unavailable", 503)
        return Response(status_code=202, headers=headers)


_FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
           "code_challenge", "code_challenge_method", "prompt", "max_age", "resource",
           "acr_values")
