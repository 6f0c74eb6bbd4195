"""Consent for third-party clients (OIDC Core §3.1.2.4, §3.1.2.6).

A first-party client (the default) gets its code as soon as the user is signed in. A
third-party client (``clients create --third-party``) first needs the user's consent to
the scopes the code would carry (requested ∩ client-allowed ∩ user-entitled): the screen
is shown once per scope set — a request within what the user allowed before goes
through, one for anything more asks again — and ``prompt=consent`` always asks. With
``prompt=none`` and no consent the answer is ``consent_required`` at the redirect URI.

The screen posts to ``/authorize/consent`` with the authorization request's parameters
(validated again from scratch), a CSRF token bound to the browser's session and
``decision`` = ``allow`` | ``deny``. Allowing stores the consent (audited
``consent.granted``) and issues the code; denying answers ``access_denied``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tessera.application.transaction import transaction
from tessera.core.consents import Consent, missing_consent
from tessera.core.sessions import Session
from tessera.identity.account_base import SessionCsrf, SignedIn, read_form, signed_in
from tessera.identity.compose import Identity
from tessera.identity.views import allow_form_redirect, page
from tessera.observability import events
from tessera.protocol.errors import OAuthError
from tessera.protocol.http import OAuthRequest, parse_params
from tessera.protocol.rfc6749.authorize import (
    AuthorizationRequest,
    RedirectError,
    UserFacingError,
)
from tessera.store.ports import StoreError

__all__ = ["ConsentEndpoints"]

_PURPOSE = "consent"
_FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
           "code_challenge", "code_challenge_method", "resource", "acr_values", "max_age")


def _asks(request: AuthorizationRequest, value: str) -> bool:
    return request.prompt is not None and value in request.prompt.split()


class ConsentEndpoints:
    def __init__(self, identity: Identity) -> None:
        self._id = identity
        self._csrf = SessionCsrf(identity)
        self._max_body = identity.settings.security.max_body_bytes

    async def finish(self, oauth: OAuthRequest, authz: AuthorizationRequest,
                     session: Session, handle: str) -> Response:
        """The end of every successful ``/authorize``: the code, or first the consent
        screen (``consent_required`` under ``prompt=none``). ``handle``: the session
        cookie the browser has, or is being given with this response."""
        if authz.client.third_party:
            scope = await self._id.authorize.granted_scope(authz, session)
            async with self._id.store.unit_of_work(read_only=True) as uow:
                stored = await uow.consents.get(session.user_id, authz.client.client_id)
            if missing_consent(scope, stored) or _asks(authz, "consent"):
                if _asks(authz, "none"):
                    return RedirectResponse(self._id.authorize.consent_required(authz), 303)
                user = await self._id.login.user(session.user_id)
                if user is None:
                    return RedirectResponse(self._id.authorize.login_required(authz), 303)
                who = SignedIn(session, user, handle)
                fields = parse_params(oauth, max_body=self._max_body,
                                      allow_query=True).as_dict()
                # relative: the page is /authorize (under any prefix the service has)
                return allow_form_redirect(page(
                    "consent.html", title="Allow access?", error=None,
                    client_name=authz.client.name, username=user.username,
                    scopes=sorted(scope), action="authorize/consent",
                    csrf=self._csrf.token(_PURPOSE, who),
                    fields={k: v for k, v in fields.items() if k in _FIELDS}),
                    authz.redirect_uri)
        return RedirectResponse(await self._id.authorize.issue_code(authz, session), 303)

    async def submit(self, request: Request) -> Response:
        """POST /authorize/consent."""
        try:
            oauth, params = await read_form(request, self._max_body)
            authz = await self._id.authorize.parse(params)
            who = await signed_in(self._id, oauth)
            session = self._id.authorize.usable_session(authz, who.session if who else None)
            if who is None or session is None:
                return RedirectResponse(self._id.authorize.login_required(authz), 303)
            if not self._csrf.check(_PURPOSE, who, params, oauth.headers):
                return page("notice.html", 403, title="Form expired", error=None, link=None,
                            heading="This form expired",
                            message="Go back to the application and sign in again.")
            if not authz.client.third_party:
                return RedirectResponse(await self._id.authorize.issue_code(authz, session),
                                        303)
            return await self._decide(oauth, params.get("decision"), authz, session)
        except UserFacingError as exc:
            return page("notice.html", 400, title="Error", heading="Something is wrong",
                        error=str(exc), message=None, link=None)
        except RedirectError as exc:
            return RedirectResponse(exc.location, status_code=303)
        except OAuthError as exc:
            return page("notice.html", exc.status, title="Error", error=exc.description,
                        heading="Something is wrong", message=None, link=None)
        except StoreError:
            return page("notice.html", 503, title="Unavailable", heading="Try again",
                        error=None, link=None,
                        message="The service is briefly unavailable. Try again.")

    async def _decide(self, _oauth: OAuthRequest, decision: str | None,
                      authz: AuthorizationRequest, session: Session) -> Response:
        client_id = authz.client.client_id
        if decision != "allow":
            await self._id.audit.record(events.CONSENT_DENIED, user_id=session.user_id,
                                        tenant_id=session.tenant_id, client_id=client_id,
                                        sid=session.sid)
            return RedirectResponse(self._id.authorize.access_denied(
                authz, "the user did not allow access"), 303)
        scope = await self._id.authorize.granted_scope(authz, session)
        async with transaction(self._id.store, self._id.audit) as tx:
            stored = await tx.uow.consents.get(session.user_id, client_id)
            allowed = scope | (stored.scope if stored else frozenset())
            await tx.uow.consents.put(Consent(session.user_id, client_id, allowed,
                                              self._id.clock.now()))
            tx.audit(events.CONSENT_GRANTED, user_id=session.user_id,
                     tenant_id=session.tenant_id, client_id=client_id, sid=session.sid,
                     scopes=" ".join(sorted(scope)))
        return RedirectResponse(await self._id.authorize.issue_code(authz, session), 303)
