"""ASGI middleware: verify ``Authorization: Bearer`` before the app sees the request.

Pure ASGI (no ``BaseHTTPMiddleware``): works under Starlette, FastAPI or any ASGI app,
streams untouched. For each HTTP or WebSocket request::

    match route (first RouteRule that fits, public paths first) → public? pass through
    → credentials(Authorization: Bearer or DPoP) → service: verify, DPoP binding (RFC
      9449 §7: proof for this method and URL), scopes, acr/auth_time (RFC 9470),
      staleness rule, tenant
    → allowed: scope["state"]["tessera_token"] = VerifiedToken (``request.state``), call app
    → denied:  RFC 6750 401/403 (or 503) with WWW-Authenticate and a JSON error body
               (a step-up refusal: 401 ``insufficient_user_authentication`` with
               ``acr_values``/``max_age``, RFC 9470 §3);
               a WebSocket is closed with 1008 before it is accepted

Unmatched paths need a valid token (no extra scopes, strict per settings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from tessera.verifier._bearer import denial_response
from tessera.verifier.decisions import correlation_id_from
from tessera.verifier.dpop import BEARER, credentials, mark_checked, presentation_from_scope
from tessera.verifier.errors import Denied, Reason
from tessera.verifier.service import VerifierService

__all__ = ["ALLOWED_KEY", "SERVICE_KEY", "TOKEN_KEY", "RouteRule", "VerifierMiddleware"]

TOKEN_KEY: Final = "tessera_token"
"""``scope["state"]`` key (``request.state.tessera_token``) of the ``VerifiedToken``."""
SERVICE_KEY: Final = "tessera_verifier"
"""``scope["state"]`` key of the ``VerifierService`` (the FastAPI dependencies use it)."""
ALLOWED_KEY: Final = "tessera_allowed"
"""Set once this request's ``access.allowed`` was recorded (dependencies do not repeat it)."""

_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class RouteRule:
    """What one path (pattern) requires.

    ``path`` is exact, may name segments (``/tenants/{tenant_id}/orders``) and may end in
    ``*`` (any rest, ``/static/*``). ``strict=None`` follows ``settings.strict_by_default``.
    ``tenant_param`` names a path segment the token's ``tid`` must equal. ``min_acr`` and
    ``max_auth_age`` (seconds since ``auth_time``) ask for stronger or more recent
    authentication (RFC 9470 step-up challenge otherwise). ``accept_stale`` lets this
    (non-strict) route accept past the staleness bound, logged and counted; a verifier
    that never loaded a snapshot refuses it anyway.
    """

    path: str
    scopes: frozenset[str] = frozenset()
    strict: bool | None = None
    public: bool = False
    methods: frozenset[str] | None = None
    """Upper-case methods this rule is for; ``None``: all."""
    tenant_param: str | None = None
    min_acr: str | None = None
    max_auth_age: int | None = None
    accept_stale: bool = False
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError("a route path starts with '/'")
        if self.accept_stale and self.strict:
            raise ValueError("a strict route cannot accept_stale")
        object.__setattr__(self, "scopes", frozenset(self.scopes))
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))
        object.__setattr__(self, "_pattern", _compile(self.path))
        if self.tenant_param is not None and self.tenant_param not in self._pattern.groupindex:
            raise ValueError(f"tenant_param {self.tenant_param!r} is not a segment of the path")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this rule applies, else ``None``."""
        if self.methods is not None and method not in self.methods:
            return None
        found = self._pattern.fullmatch(path)
        return None if found is None else found.groupdict()


def _compile(path: str) -> re.Pattern[str]:
    wildcard = path.endswith("*")
    body = path[:-1] if wildcard else path
    parts, last = [], 0
    for param in _PARAM.finditer(body):
        parts.append(re.escape(body[last:param.start()]))
        parts.append(f"(?P<{param.group(1)}>[^/]+)")
        last = param.end()
    parts.append(re.escape(body[last:]))
    return re.compile("".join(parts) + (".*" if wildcard else ""))


_DEFAULT: Final = RouteRule("/*")


class VerifierMiddleware:
    def __init__(self, app: ASGIApp, service: VerifierService, *,
                 routes: Sequence[RouteRule] = (), public: Iterable[str] = ()) -> None:
        """``public``: path patterns served without a token (health checks, metrics
        behind a network boundary). ``routes``: first match wins."""
        self.app = app
        self.service = service
        self.rules = (*(RouteRule(p, public=True) for p in public), *routes)
        for rule in routes:  # a min_acr outside settings.acr_levels fails here, not later
            service.policy_for(rule.scopes, min_acr=rule.min_acr,
                               max_auth_age=rule.max_auth_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[SERVICE_KEY] = self.service
        rule, params = self._match(scope.get("method", "GET"), scope["path"])
        if rule.public:
            await self.app(scope, receive, send)
            return
        authorizations, request_id = _headers(scope)
        attempt = self.service.attempt(
            route=rule.path if rule is not _DEFAULT else scope["path"],
            correlation_id=correlation_id_from(request_id))
        scheme = BEARER
        try:
            try:
                if len(authorizations) > 1:
                    raise Denied(Reason.MALFORMED, "more than one Authorization header")
                scheme, raw = credentials(authorizations[0] if authorizations else None)
            except Denied as denied:
                attempt.deny(denied)
                raise
            presentation = presentation_from_scope(
                scope, scheme, raw, public_url=self.service.settings.dpop_public_url)
            await attempt.verify(raw, scopes=rule.scopes, strict=rule.strict,
                                 min_acr=rule.min_acr, max_auth_age=rule.max_auth_age,
                                 presentation=presentation, accept_stale=rule.accept_stale)
            mark_checked(scope, raw, presentation)
            attempt.require(tenant=params.get(rule.tenant_param) if rule.tenant_param
                            else None)
        except Denied as denied:
            await _refuse(scope, send, denied, rule.scopes,
                          self.service.dpop.challenge_algs(denied, scheme))
            return
        state[TOKEN_KEY] = attempt.allow()
        state[ALLOWED_KEY] = True
        await self.app(scope, receive, send)

    def _match(self, method: str, path: str) -> tuple[RouteRule, dict[str, str]]:
        for rule in self.rules:
            params = rule.match(method, path)
            if params is not None:
                return rule, params
        return _DEFAULT, {}


def _headers(scope: Scope) -> tuple[list[str], str | None]:
    """Every ``Authorization`` value and the ``X-Request-Id``."""
    authorizations: list[str] = []
    request_id: str | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorizations.append(value.decode("latin-1"))
        elif name == b"x-request-id":
            request_id = value.decode("latin-1")
    return authorizations, request_id


async def _refuse(scope: Scope, send: Send, denied: Denied, scopes: frozenset[str],
                  dpop_algs: str | None = None) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    status, headers, body = denial_response(denied, scopes=scopes, dpop_algs=dpop_algs)
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
