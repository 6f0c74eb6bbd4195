"""Federation (docs/federation.md): the browser's round trip to an upstream OpenID
Connect provider, and the provider's back channel (OIDC Back-Channel Logout 1.0, RFC 8935
push delivery of Security Event Tokens). Mounted when ``federation.enabled``."""

from __future__ import annotations

from tessera.identity.openapi.browser import _AUTHZ
from tessera.identity.openapi.components import (
    Json,
    form,
    html_page,
    oauth_errors,
    operation,
    query,
    redirect,
    string,
)
from tessera.identity.openapi.context import DocumentContext

__all__ = ["paths"]

_TAG = ("federation",)
_IDP: Json = {"name": "idp_id", "in": "path", "required": True,
              "description": "The provider's id (`tessera idps show NAME`)",
              "schema": {"type": "string", "maxLength": 64}}
_PAGES = (200, 400, 401, 403, 404, 429, 502, 503)
_SET_ERROR: Json = {"type": "object", "required": ["err", "description"],
                    "properties": {"err": string("RFC 8935 §2.3 error code"),
                                   "description": string()}}


def _set_errors(*statuses: int) -> dict[str, Json]:
    return {str(s): {"description": "Refused (RFC 8935 §2.3)",
                     "content": {"application/json": {"schema": _SET_ERROR}}}
            for s in statuses}


def paths(ctx: DocumentContext) -> dict[str, Json]:
    if not ctx.federation:
        return {}
    return {
        "/federation/{idp_id}/start": {"get": operation(
            "Sign in with an upstream provider", tags=_TAG,
            description="Checks the authorization request like `/authorize`, then sends "
                        "the browser to the provider (state, nonce, PKCE S256).",
            parameters=[_IDP, *(query(n, t) for n, t in _AUTHZ.items()),
                        query("login_hint", "Passed to the provider")],
            responses={**html_page("Error page", *_PAGES),
                       **redirect("To the provider's authorization endpoint, or to the "
                                  "client with an error")})},
        "/federation/{idp_id}/callback": {"get": operation(
            "Redirection endpoint for the upstream provider", tags=_TAG,
            parameters=[_IDP, query("code", "Authorization code"),
                        query("state", "The state sent"), query("iss", "RFC 9207 issuer"),
                        query("error", "The provider's error code"),
                        query("error_description", "The provider's error text")],
            responses={**html_page("Error page (expired, refused, provider down)", *_PAGES),
                       **redirect("To the client with the authorization code")})},
        "/federation/{idp_id}/backchannel-logout": {"post": operation(
            "OpenID Connect Back-Channel Logout 1.0 (from the provider)", tags=_TAG,
            parameters=[_IDP],
            body=form({"logout_token": string("The provider's signed logout token")},
                      required=("logout_token",)),
            responses={"200": {"description": "The linked local sessions are revoked"},
                       **oauth_errors(400, 404, 503)})},
        "/federation/{idp_id}/ssf/push": {"post": operation(
            "Push delivery of a Security Event Token (RFC 8935; CAEP session-revoked, "
            "credential-change)", tags=_TAG, parameters=[_IDP],
            body={"required": True, "content": {
                "application/secevent+jwt": {"schema": {"type": "string"}}}},
            responses={"202": {"description": "Accepted; the linked sessions are revoked"},
                       **_set_errors(400, 404, 503)})},
    }



