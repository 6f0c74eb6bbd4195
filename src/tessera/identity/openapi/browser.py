"""Browser endpoints: the authorization endpoint with its login and TOTP pages (RFC 6749
§3.1, RFC 7636, RFC 9470 step-up), RP-initiated logout (OIDC RP-Initiated Logout 1.0 §2). They
answer HTML pages and 303 redirects, never JSON. The account pages and the consent step:
``account``."""

from __future__ import annotations

from tessera.identity.openapi.components import (
    Json,
    form,
    html_page,
    operation,
    query,
    redirect,
    string,
)
from tessera.identity.openapi.context import DocumentContext

__all__ = ["paths"]

_TAG = ("browser",)
_AUTHZ: dict[str, str] = {
    "client_id": "The client", "redirect_uri": "Exactly one of the client's redirect URIs",
    "response_type": "`code`", "scope": "Space-separated scopes", "state": "Opaque, returned",
    "nonce": "OIDC nonce, returned in the ID token",
    "code_challenge": "RFC 7636 S256 challenge (required for public clients)",
    "code_challenge_method": "`S256` only", "prompt": "`none`, `login`",
    "max_age": "Seconds since the last authentication (OIDC Core §3.1.2.1)",
    "resource": "RFC 8707 resource indicator", "acr_values": "Requested ACR (RFC 9470)",
}
_LOGIN = {"username": string(), "password": string(), "csrf_token": string(),
          "pending": string("The pending login awaiting a TOTP code"),
          "totp_code": string("Six-digit TOTP code")}
_LOGOUT: dict[str, str] = {
    "id_token_hint": "An ID token of the session",
    "client_id": "The client asking for logout",
    "post_logout_redirect_uri": "One of the client's registered post-logout URIs",
    "state": "Returned on the redirect",
}
_PAGE_STATUSES = (200, 400, 401, 403, 429, 503)


def _authorize() -> Json:
    return {
        "get": operation(
            "Authorization endpoint (login page)", tags=_TAG,
            parameters=[query(name, text) for name, text in _AUTHZ.items()],
            responses={**html_page("Login page, or an error page for a request that "
                                   "cannot be redirected", *_PAGE_STATUSES),
                       **redirect("To the client with `code` (or `error`), `state` and "
                                  "`iss` (RFC 9207)")}),
        "post": operation(
            "Authorization endpoint (login form submission)", tags=_TAG,
            body=form({**{name: string(text) for name, text in _AUTHZ.items()}, **_LOGIN}),
            responses={**html_page("Login or TOTP page again (wrong credentials, expired "
                                   "form)", *_PAGE_STATUSES),
                       **redirect("To the client with the authorization code")}),
    }


def _logout() -> Json:
    return {
        "get": operation(
            "RP-initiated logout (confirmation page)", tags=_TAG,
            parameters=[query(name, text) for name, text in _LOGOUT.items()],
            responses={**html_page("Confirmation page or logged-out page", *_PAGE_STATUSES),
                       **redirect("To the client's post-logout redirect URI")}),
        "post": operation(
            "RP-initiated logout (confirmed)", tags=_TAG,
            body=form({**{name: string(text) for name, text in _LOGOUT.items()},
                       "csrf_token": string()}),
            responses={**html_page("Logged-out page", *_PAGE_STATUSES),
                       **redirect("To the client's post-logout redirect URI")}),
    }


def paths(_: DocumentContext) -> dict[str, Json]:
    return {"/authorize": _authorize(), "/logout": _logout()}
