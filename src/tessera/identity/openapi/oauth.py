"""OAuth 2.0 / OIDC endpoints: token (RFC 6749 §3.2, RFC 8693), introspection (RFC 7662),
revocation (RFC 7009), userinfo (OIDC Core §5.3), discovery (RFC 8414), JWKS (RFC 7517)."""

from __future__ import annotations

from tessera.core.clients import (
    GRANT_AUTHORIZATION_CODE,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_DEVICE_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_TOKEN_EXCHANGE,
)
from tessera.identity.openapi.components import (
    Json,
    bearer,
    client_auth,
    form,
    oauth_errors,
    ok_json,
    operation,
    ref,
    string,
)
from tessera.identity.openapi.context import DocumentContext

__all__ = ["paths"]

_TAG = ("oauth",)
_CLIENT = {"client_id": string("Public clients, and `client_secret_post`"),
           "client_secret": string("`client_secret_post` (RFC 6749 §2.3.1)")}
_ASSERTION = {
    "client_assertion_type": string(
        "RFC 7523 §2.2: urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
    "client_assertion": string("A JWT signed by the client's key (`private_key_jwt`), or "
                               "its workload identity token (JWT-SVID, Kubernetes "
                               "service-account token)")}
_SCOPE = {"scope": string("Space-separated scopes, at most those the client may have")}
_TARGET = {"resource": string("RFC 8707 resource indicator (an audience the client has)"),
           "audience": string("Audience (RFC 8693 §2.1)")}
_TOKEN_TYPES = ["urn:ietf:params:oauth:token-type:access_token",
                "urn:ietf:params:oauth:token-type:refresh_token",
                "urn:ietf:params:oauth:token-type:id_token",
                "urn:ietf:params:oauth:token-type:jwt"]
_DPOP_HEADER: Json = {"name": "DPoP", "in": "header", "required": False,
                      "description": "RFC 9449 §4 DPoP proof JWT: binds the issued tokens to "
                                     "its key", "schema": string()}


def _grant(grant_type: str, required: tuple[str, ...], properties: dict[str, Json]) -> Json:
    return {"type": "object", "title": grant_type,
            "required": ["grant_type", *required],
            "properties": {"grant_type": {"const": grant_type}, **properties}}


_GRANTS: dict[str, Json] = {
    GRANT_AUTHORIZATION_CODE: _grant(GRANT_AUTHORIZATION_CODE, ("code", "redirect_uri"), {
        "code": string("The authorization code (single use)"),
        "redirect_uri": string("Exactly the one of the authorization request"),
        "code_verifier": string("RFC 7636 PKCE verifier (required for public clients)"),
        **_TARGET}),
    GRANT_REFRESH_TOKEN: _grant(GRANT_REFRESH_TOKEN, ("refresh_token",), {
        "refresh_token": string("Rotated on every use; reuse revokes the family"),
        **_SCOPE}),
    GRANT_CLIENT_CREDENTIALS: _grant(GRANT_CLIENT_CREDENTIALS, (), {**_SCOPE, **_TARGET}),
    GRANT_DEVICE_CODE: _grant(GRANT_DEVICE_CODE, ("device_code",), {
        "device_code": string("From the device authorization response (RFC 8628 §3.4)")}),
    GRANT_TOKEN_EXCHANGE: _grant(GRANT_TOKEN_EXCHANGE, ("subject_token", "subject_token_type"), {
        "subject_token": string(),
        "subject_token_type": string(examples=_TOKEN_TYPES),
        "actor_token": string(),
        "actor_token_type": string(examples=_TOKEN_TYPES),
        "requested_token_type": string(examples=_TOKEN_TYPES[:1]),
        **_SCOPE, **_TARGET}),
}


def _token(ctx: DocumentContext) -> Json:
    grants = [_GRANTS[g] for g in ctx.grant_types if g in _GRANTS]
    properties: dict[str, Json] = {"grant_type": string(enum=list(ctx.grant_types))}
    for grant in grants:
        properties.update({k: v for k, v in grant["properties"].items() if k != "grant_type"})
    return {"post": operation(
        "Token endpoint", tags=_TAG, security=client_auth,
        description="RFC 6749 §3.2 with the grants this server enables; RFC 7636 PKCE (S256), "
                    "RFC 8693 token exchange, RFC 9449 DPoP (`DPoP` header).",
        parameters=[_DPOP_HEADER] if ctx.dpop else None,
        body=form({**properties, **_CLIENT, **_ASSERTION}, required=("grant_type",),
                  one_of=grants),
        responses={**ok_json("Tokens issued", ref("TokenResponse"), no_store=True),
                   **oauth_errors(400, 401, 429, 503)})}


def _introspect() -> Json:
    answer = ok_json("Token state", ref("IntrospectionResponse"), no_store=True)
    # RFC 9701: the same answer as a signed JWT when the caller asks for it in Accept
    answer["200"]["content"]["application/token-introspection+jwt"] = {"schema": string(
        "JWS (typ token-introspection+jwt): iss, aud, iat, token_introspection")}
    return {"post": operation(
        "Token introspection (RFC 7662)", tags=_TAG, security=client_auth,
        description="Confidential clients only. Any token state other than active answers "
                    "`{\"active\": false}`. Reference (opaque) access tokens are answered "
                    "here. `Accept: application/token-introspection+jwt` returns the answer "
                    "as a signed JWT (RFC 9701).",
        body=form({"token": string("The token to introspect"),
                   "token_type_hint": string(examples=["access_token", "refresh_token"]),
                   **_CLIENT, **_ASSERTION}, required=("token",)),
        responses={**answer, **oauth_errors(400, 401, 429, 503)})}


def _revoke() -> Json:
    return {"post": operation(
        "Token revocation (RFC 7009)", tags=_TAG, security=client_auth,
        description="200 for a revoked, unknown or another client's token alike (§2.2).",
        body=form({"token": string("The token to revoke"),
                   "token_type_hint": string(examples=["access_token", "refresh_token"]),
                   **_CLIENT, **_ASSERTION}, required=("token",)),
        responses={**ok_json("Revoked (or nothing to revoke)", {"type": "object"},
                             no_store=True),
                   **oauth_errors(400, 401, 429, 503)})}


def _userinfo(ctx: DocumentContext) -> Json:
    def op(method: str) -> Json:
        return operation(
            f"UserInfo ({method})", tags=_TAG, security=bearer,
            description="OIDC Core §5.3: an access token with the `openid` scope in the "
                        "`Authorization` header (never in the query).",
            parameters=[_DPOP_HEADER] if ctx.dpop else None,
            responses={**ok_json("Claims of the token's user", ref("UserInfo"), no_store=True),
                       **oauth_errors(400, 401, 403, 503)})

    return {"get": op("GET"), "post": op("POST")}


def _static(summary: str, schema: str, description: str) -> Json:
    return {"get": operation(summary, tags=("discovery",), description=description,
                             responses=ok_json(summary, ref(schema)))}


def paths(ctx: DocumentContext) -> dict[str, Json]:
    metadata = "RFC 8414 §3 / OIDC Discovery §4: only what this server supports."
    return {
        "/token": _token(ctx),
        "/introspect": _introspect(),
        "/revoke": _revoke(),
        "/userinfo": _userinfo(ctx),
        "/.well-known/openid-configuration": _static(
            "OpenID Provider metadata", "ServerMetadata", metadata),
        "/.well-known/oauth-authorization-server": _static(
            "Authorization server metadata", "ServerMetadata", metadata),
        "/jwks": _static("JSON Web Key Set", "JWKS",
                         "Public keys in states next, active and retiring (DESIGN §5)."),
    }
