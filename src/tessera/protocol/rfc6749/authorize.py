"""The authorization endpoint (RFC 6749 §3.1, §4.1.1–§4.1.2; OIDC Core §3.1.2).

Until the client and its redirect URI are known good, errors are shown to the user and
never redirected (§4.1.2.1); after that they go back to the client with ``state`` and
``iss`` (RFC 9207). PKCE is required for public clients (RFC 9700 §2.1.1).

Authentication requirements (OIDC Core §3.1.2.1, RFC 9470 §4): ``prompt=login``,
``max_age`` and ``acr_values`` decide whether the browser's session will do. The weakest
``acr_values`` entry this server knows (``core.acr``) is the level required; unknown
values are ignored (they are voluntary). A session below it is re-authenticated in place
(same ``sid``); a user who cannot reach it gets ``unmet_authentication_requirements``
(OpenID Connect Core Error Code unmet_authentication_requirements 1.0).

Trust boundaries: a browser session serves only clients of its own tenant
(``usable_session``); a code is issued only to a user in good standing (``standing``)
and carries only the privileged scopes the user's roles entitle (``core.roles``):
requested ∩ client-allowed ∩ user-entitled.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from tessera.application.ports import AuditTrail
from tessera.application.standing import NotInGoodStanding, check_tenant, check_user, client_tenant
from tessera.application.transaction import transaction
from tessera.core.acr import acr_satisfies, weakest_known
from tessera.core.clients import GRANT_AUTHORIZATION_CODE, Client
from tessera.core.clock import Clock
from tessera.core.roles import narrow_to_entitlement
from tessera.core.scopes import ScopeError, narrow_scope, parse_scope
from tessera.core.secrets import new_secret, token_hash
from tessera.core.sessions import AuthorizationCode, Session
from tessera.observability import events
from tessera.protocol.clients import ClientDirectory
from tessera.protocol.errors import (
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from tessera.protocol.http import Params
from tessera.protocol.rfc7636 import PkceError, check_challenge
from tessera.store.ports import Store

__all__ = ["AuthorizationEndpoint", "AuthorizationRequest", "RedirectError", "UserFacingError"]

_IMPLICIT_SCOPES = frozenset({"openid"})
_MAX_ACR_VALUES = 10
_MAX_ACR_LENGTH = 200


class UserFacingError(Exception):
    """The request cannot be trusted enough to redirect: show this to the user."""


class RedirectError(Exception):
    """An OAuth error to send back to the client's redirect URI."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scope: frozenset[str]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: str | None
    max_age: int | None
    acr_values: tuple[str, ...] = ()
    """As requested, in order of preference (OIDC Core §3.1.2.1)."""

    @property
    def required_acr(self) -> str | None:
        """The level the session must have: the weakest requested value we know."""
        return weakest_known(self.acr_values)


class AuthorizationEndpoint:
    def __init__(self, store: Store, clients: ClientDirectory, audit: AuditTrail, clock: Clock,
                 *, issuer: str, code_ttl: int) -> None:
        self._store = store
        self._clients = clients
        self._audit = audit
        self._clock = clock
        self._issuer = issuer
        self._code_ttl = code_ttl

    async def parse(self, params: Params) -> AuthorizationRequest:
        client, redirect_uri = await self._trusted_target(params)
        state = params.get("state")
        try:
            return self._check(params, client, redirect_uri, state)
        except OAuthError as exc:
            raise RedirectError(self._redirect(redirect_uri, {
                "error": exc.error, "error_description": exc.description, "state": state,
            })) from None

    async def _trusted_target(self, params: Params) -> tuple[Client, str]:
        client_id = params.get("client_id")
        if client_id is None:
            raise UserFacingError("The request names no client.")
        client = await self._clients.get(client_id)
        if client is None or client.disabled:
            raise UserFacingError("The client is not registered.")
        async with self._store.unit_of_work(read_only=True) as uow:
            try:
                await check_tenant(uow, client_tenant(client))
            except NotInGoodStanding:
                raise UserFacingError("The client is not available at the moment.") from None
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None:
            if len(client.redirect_uris) != 1:
                raise UserFacingError("The request has no redirect_uri.")
            redirect_uri = client.redirect_uris[0]
        if not client.allows_redirect_uri(redirect_uri):
            raise UserFacingError("The redirect_uri is not registered for this client.")
        return client, redirect_uri

    @staticmethod
    def _check(params: Params, client: Client, redirect_uri: str,
               state: str | None) -> AuthorizationRequest:
        if params.get("response_type") != "code":
            raise UnsupportedResponseType("only response_type=code is supported")
        if not client.allows_grant(GRANT_AUTHORIZATION_CODE):
            raise UnauthorizedClient("the client may not use the authorization code grant")
        if "request" in params or "request_uri" in params:
            raise InvalidRequest("request objects are not supported")
        try:
            requested = parse_scope(params.get("scope"))
            scope = narrow_scope(requested, client.scopes | _IMPLICIT_SCOPES)
        except ScopeError as exc:
            raise InvalidScope(str(exc)) from None
        challenge = params.get("code_challenge")
        try:
            check_challenge(challenge, params.get("code_challenge_method"))
        except PkceError as exc:
            raise InvalidRequest(str(exc)) from None
        if client.public and challenge is None:
            raise InvalidRequest("public clients must use PKCE (code_challenge, S256)")
        max_age_raw = params.get("max_age")
        max_age = None
        if max_age_raw is not None:
            if not max_age_raw.isdigit() or len(max_age_raw) > 9:
                raise InvalidRequest("max_age must be a non-negative integer")
            max_age = int(max_age_raw)
        return AuthorizationRequest(
            client=client, redirect_uri=redirect_uri, scope=scope, state=state,
            nonce=params.get("nonce"), code_challenge=challenge, prompt=params.get("prompt"),
            max_age=max_age, acr_values=parse_acr_values(params.get("acr_values")),
        )

    @staticmethod
    def usable_session(request: AuthorizationRequest,
                       session: Session | None) -> Session | None:
        """The browser's session, if it may serve this client: an SSO session of another
        tenant is no session at all for it (the user signs in again, in this tenant)."""
        if session is None or not session.active:
            return None
        return session if session.tenant_id == client_tenant(request.client) else None

    def needs_login(self, request: AuthorizationRequest, session: Session | None) -> bool:
        """OIDC Core §3.1.2.1: ``prompt=login`` and ``max_age`` force a fresh login;
        ``max_age=0`` is ``prompt=login`` (even within the second of the last login);
        a session below the required ``acr`` must step up (RFC 9470 §4)."""
        if session is None or not session.active:
            return True
        if request.prompt is not None and "login" in request.prompt.split():
            return True
        if self.acr_too_low(request, session.acr):
            return True
        if request.max_age is None:
            return False
        return request.max_age == 0 or self._clock.now() - session.auth_time > request.max_age

    @staticmethod
    def acr_too_low(request: AuthorizationRequest, acr: str) -> bool:
        required = request.required_acr
        return required is not None and not acr_satisfies(acr, required)

    async def record_step_up(self, request: AuthorizationRequest, session: Session) -> None:
        """Audit that this session must authenticate more strongly for this request."""
        await self._audit.record(events.AUTH_STEP_UP_REQUIRED, sid=session.sid,
                                 user_id=session.user_id, tenant_id=session.tenant_id,
                                 client_id=request.client.client_id, acr=session.acr,
                                 required_acr=request.required_acr)

    def unmet_requirements(self, request: AuthorizationRequest) -> str:
        """The user cannot reach the required ``acr`` (no second factor enrolled)."""
        return self._redirect(request.redirect_uri, {
            "error": "unmet_authentication_requirements",
            "error_description": "the user cannot authenticate at the requested level",
            "state": request.state})

    def login_required(self, request: AuthorizationRequest) -> str:
        """``prompt=none`` with no usable session: redirect with ``login_required``."""
        return self._redirect(request.redirect_uri, {
            "error": "login_required", "error_description": "the user must log in",
            "state": request.state})

    def consent_required(self, request: AuthorizationRequest) -> str:
        """``prompt=none`` and the third-party client lacks the user's consent (OIDC Core
        §3.1.2.6): redirect with ``consent_required``."""
        return self._redirect(request.redirect_uri, {
            "error": "consent_required",
            "error_description": "the user has not allowed this client these scopes",
            "state": request.state})

    def access_denied(self, request: AuthorizationRequest, description: str) -> str:
        return self._redirect(request.redirect_uri, {
            "error": "access_denied", "error_description": description,
            "state": request.state})

    async def granted_scope(self, request: AuthorizationRequest,
                            session: Session) -> frozenset[str]:
        """What a code for this session would carry: the request (already within the
        client's scopes) narrowed to the privileged scopes the user's roles entitle."""
        async with self._store.unit_of_work(read_only=True) as uow:
            roles = await uow.roles.of_user(session.user_id)
        return narrow_to_entitlement(request.scope, roles)

    async def issue_code(self, request: AuthorizationRequest, session: Session) -> str:
        """Store a fresh code for this session; return the redirect location. The user
        must be in good standing in the client's tenant, and the code carries only the
        privileged scopes the user's roles entitle now; otherwise ``access_denied``."""
        code = new_secret()
        now = self._clock.now()
        denied: str | None = None
        async with transaction(self._store, self._audit) as tx:
            try:
                await check_user(tx.uow, session.user_id,
                                 tenant_id=client_tenant(request.client))
            except NotInGoodStanding as exc:
                tx.audit(events.LOGIN_FAILED, client_id=request.client.client_id,
                         sid=session.sid, user_id=session.user_id, tenant_id=session.tenant_id,
                         reason=exc.reason)
                denied = self.access_denied(request, "the user may not sign in here")
            else:
                scope = narrow_to_entitlement(request.scope,
                                              await tx.uow.roles.of_user(session.user_id))
                await tx.uow.codes.add(AuthorizationCode(
                    code_hash=token_hash(code), client_id=request.client.client_id,
                    sid=session.sid, user_id=session.user_id,
                    redirect_uri=request.redirect_uri, scope=scope,
                    code_challenge=request.code_challenge, nonce=request.nonce,
                    expires_at=now + self._code_ttl))
                tx.audit(events.CODE_ISSUED, client_id=request.client.client_id,
                         sid=session.sid, user_id=session.user_id, tenant_id=session.tenant_id)
        if denied is not None:
            raise RedirectError(denied)
        return self._redirect(request.redirect_uri, {"code": code, "state": request.state})

    def _redirect(self, redirect_uri: str, params: dict[str, str | None]) -> str:
        query = {k: v for k, v in params.items() if v is not None}
        query["iss"] = self._issuer
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return redirect_uri + separator + urlencode(query)


def parse_acr_values(raw: str | None) -> tuple[str, ...]:
    """``acr_values``: space-separated, in order of preference (OIDC Core §3.1.2.1)."""
    if raw is None:
        return ()
    values = tuple(raw.split())
    if len(values) > _MAX_ACR_VALUES or any(len(v) > _MAX_ACR_LENGTH for v in values):
        raise InvalidRequest("acr_values has too many or too long values")
    return values
