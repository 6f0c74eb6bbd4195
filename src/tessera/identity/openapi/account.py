"""The signed-in user's own pages (``/account/*``: password change, two-step verification
management) and the consent step of the authorization endpoint (OIDC Core §3.1.2.4).
HTML pages and 303 redirects; every POST needs the browser session cookie and a CSRF
token bound to that session."""

from __future__ import annotations

from tessera.identity.openapi.components import Json, form, html_page, operation, redirect, string
from tessera.identity.openapi.context import DocumentContext

__all__ = ["paths"]

_TAG = ("account",)
_STATUSES = (200, 400, 401, 403, 429, 503)
_SESSION = "Needs the browser session cookie of a signed-in user (else 401)."
_CSRF = string("Token of the page, bound to the browser's session")


def _page(summary: str, what: str) -> Json:
    return operation(summary, tags=_TAG, description=_SESSION,
                     responses=html_page(what, *_STATUSES))


def _password() -> Json:
    return {
        "get": _page("Password change form", "The form"),
        "post": operation(
            "Change the password", tags=_TAG,
            description=_SESSION + " Every other session of the user ends.",
            body=form({"current_password": string(), "new_password": string(),
                       "confirm_password": string(), "csrf_token": _CSRF}),
            responses=html_page("Done, or the form again with the problem", *_STATUSES)),
    }


def _totp() -> Json:
    return {
        "get": _page("Two-step verification", "Enrolment (after a recent sign-in), the "
                                              "password prompt, or the management page"),
        "post": operation(
            "Two-step verification: confirm it is you, enrol, renew recovery codes, turn off",
            tags=_TAG, description=_SESSION,
            body=form({"step": string(enum=["reauth", "enrol", "recovery_codes", "disable"]),
                       "password": string("For `reauth`"),
                       "totp_code": string("A code from the app, or a recovery code"),
                       "csrf_token": _CSRF}),
            responses=html_page("The next page, or the form again", *_STATUSES)),
    }


def _sessions() -> Json:
    return {
        "get": _page("Your sessions", "Every active session of the user (browsers and "
                                      "devices): user agent, address, created, last seen, "
                                      "which is this browser's"),
        "post": operation(
            "End one of your sessions", tags=_TAG,
            description=_SESSION + " Revoked through the outbox like any revocation; "
                                   "another user's session is answered 404.",
            body=form({"sid": string("The session to end"), "csrf_token": _CSRF}),
            responses=html_page("The list again, or the signed-out page", 200, 400, 401,
                                404, 503)),
    }


def _consent() -> Json:
    return {"post": operation(
        "Consent to a third-party client's request", tags=("browser",),
        description="The authorization request's parameters, re-validated, with the user's "
                    "decision. Needs the browser session cookie.",
        body=form({"client_id": string(), "redirect_uri": string(),
                   "response_type": string(), "scope": string(), "state": string(),
                   "nonce": string(), "code_challenge": string(),
                   "code_challenge_method": string(), "resource": string(),
                   "acr_values": string(), "max_age": string(),
                   "decision": string(enum=["allow", "deny"]), "csrf_token": _CSRF}),
        responses={**html_page("An error page for a request that cannot be redirected",
                               *_STATUSES),
                   **redirect("To the client with `code`, or `error` (`access_denied`, "
                              "`login_required`)")})}


def paths(_: DocumentContext) -> dict[str, Json]:
    return {"/account": {"get": _page("Your account", "Overview: username, tenant, roles, "
                                                      "two-step verification")},
            "/account/password": _password(), "/account/totp": _totp(),
            "/account/sessions": _sessions(),
            "/authorize/consent": _consent()}
