"""Building blocks of the OpenAPI document: shared schemas and the request/response shapes
every section uses (form bodies, RFC 6749 §5.2 errors, HTML pages, redirects).

A section describes an operation with these helpers so that one shape is written once:
``operation(summary, responses=..., body=form(...))`` with ``responses`` merged from
``ok_json(...)``, ``oauth_errors(400, 401, ...)``, ``html_page(...)``, ``redirect(...)``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMAS", "SECURITY_SCHEMES", "Json", "bearer", "client_auth", "form",
           "html_page", "oauth_errors", "ok_json", "operation", "query", "redirect", "ref",
           "string"]

Json = dict[str, Any]

FORM = "application/x-www-form-urlencoded"
_MAX_VALUE = 8192
"""Longest parameter value the form parser accepts (``protocol/http.py``)."""


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


_PARAMETER_TEXT = "^[^\\u0000-\\u0008\\u000a-\\u001f\\u007f]*$"
"""RFC 6749 App. A: no parameter allows control characters other than TAB; the form
parser refuses them (``protocol/http.py``)."""


def string(description: str = "", **extra: Any) -> Json:
    """A request parameter as the form parser accepts it: at most 8192 characters, no
    control characters. Use it only where the parser runs before anything else could
    answer (schemathesis checks that a value breaking the schema is refused)."""
    schema: Json = {"type": "string", "maxLength": _MAX_VALUE, "pattern": _PARAMETER_TEXT,
                    **extra}
    if description:
        schema["description"] = description
    return schema


_NO_STORE: Json = {"Cache-Control": {"description": "`no-store` (RFC 6749 §5.1)",
                                     "schema": {"type": "string"}}}

SCHEMAS: dict[str, Json] = {
    "OAuthError": {
        "type": "object",
        "description": "RFC 6749 §5.2 error response (also RFC 6750 §3, RFC 7009 §2.2.1, "
                       "RFC 9449 §5/§7.1). `error_description` is for developers; it never "
                       "carries internals.",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "examples": ["invalid_request", "invalid_client",
                                                      "invalid_grant", "unauthorized_client",
                                                      "unsupported_grant_type", "invalid_scope",
                                                      "invalid_token", "insufficient_scope",
                                                      "invalid_dpop_proof", "use_dpop_nonce",
                                                      "slow_down", "temporarily_unavailable",
                                                      "not_found", "method_not_allowed"]},
            "error_description": {"type": "string"},
            "error_uri": {"type": "string"},
        },
    },
    "TokenResponse": {
        "type": "object",
        "description": "RFC 6749 §5.1 (+ OIDC `id_token`, RFC 8693 §2.2.1 "
                       "`issued_token_type`, RFC 9449 `token_type: DPoP`).",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "enum": ["Bearer", "DPoP", "N_A"]},
            "expires_in": {"type": "integer"},
            "scope": {"type": "string"},
            "refresh_token": {"type": "string"},
            "id_token": {"type": "string"},
            "issued_token_type": {"type": "string"},
        },
    },
    "IntrospectionResponse": {
        "type": "object",
        "description": "RFC 7662 §2.2: an inactive, unknown, revoked or stale token is only "
                       "`{\"active\": false}`.",
        "required": ["active"],
        "properties": {
            "active": {"type": "boolean"},
            "token_type": {"type": "string"},
            "scope": {"type": "string"},
            "client_id": {"type": "string"},
            "sub": {"type": "string"},
            "aud": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "iss": {"type": "string"},
            "exp": {"type": "integer"},
            "iat": {"type": "integer"},
            "nbf": {"type": "integer"},
            "jti": {"type": "string"},
            "sid": {"type": "string"},
            "sv": {"type": "integer"},
            "tid": {"type": "string"},
            "acr": {"type": "string"},
            "amr": {"type": "array", "items": {"type": "string"}},
            "auth_time": {"type": "integer"},
            "cnf": {"type": "object", "properties": {"jkt": {"type": "string"}}},
            "act": {"type": "object"},
        },
    },
    "ServerMetadata": {
        "type": "object",
        "description": "RFC 8414 §2 / OpenID Connect Discovery 1.0 §3.",
        "required": ["issuer", "token_endpoint", "jwks_uri", "response_types_supported"],
        "properties": {
            "issuer": {"type": "string"},
            "authorization_endpoint": {"type": "string"},
            "token_endpoint": {"type": "string"},
            "jwks_uri": {"type": "string"},
            "grant_types_supported": {"type": "array", "items": {"type": "string"}},
            "response_types_supported": {"type": "array", "items": {"type": "string"}},
        },
    },
    "JWKS": {
        "type": "object",
        "description": "RFC 7517 §5: the public keys (next, active, retiring).",
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {
            "type": "object", "required": ["kty", "kid"],
            "properties": {"kty": {"type": "string"}, "kid": {"type": "string"},
                           "alg": {"type": "string"}, "use": {"type": "string"}}}}},
    },
    "UserInfo": {
        "type": "object",
        "description": "OIDC Core §5.3.2.",
        "required": ["sub"],
        "properties": {"sub": {"type": "string"}, "preferred_username": {"type": "string"}},
    },
    "RevocationEvent": {
        "type": "object",
        "description": "One revocation event as verifiers receive it (`bus.event_to_wire`).",
        "required": ["kind", "key", "at"],
        "properties": {"seq": {"type": ["integer", "null"]},
                       "kind": {"type": "string", "examples": ["session.revoked"]},
                       "key": {"type": "string", "description": "What is revoked: a sid, "
                               "jti, family id, user id, tenant id or client id"},
                       "at": {"type": "number"}, "expires_at": {"type": ["number", "null"]},
                       "data": {"type": "object"}},
    },
    "Watermark": {
        "type": "object",
        "description": "When the outbox was read at `at`, its last event was `head`: every "
                       "event committed before `at` has `seq <= head` (docs/freshness.md). "
                       "`epoch`: the channel's incarnation; null for the store's own answers.",
        "required": ["head", "at"],
        "properties": {"head": {"type": "integer", "minimum": 0}, "at": {"type": "number"},
                       "epoch": {"type": ["string", "null"]}},
    },
    "RevocationSnapshot": {
        "type": "object",
        "required": ["seq", "events", "watermark"],
        "properties": {"seq": {"type": "integer"},
                       "events": {"type": "array", "items": ref("RevocationEvent")},
                       "watermark": ref("Watermark")},
    },
    "RevocationPage": {
        "type": "object",
        "description": "Events after a cursor, up to the watermark's head (a gap fill).",
        "required": ["events", "next", "watermark"],
        "properties": {"events": {"type": "array", "items": ref("RevocationEvent")},
                       "next": {"type": ["integer", "null"],
                                "description": "`after` of the next page; null: the last"},
                       "watermark": ref("Watermark")},
    },
    "AppliedReport": {
        "type": "object",
        "description": "What one verifier has applied (batched: the cursor covers every "
                       "event up to it).",
        "required": ["verifier_id", "service", "cursor"],
        "additionalProperties": False,
        "properties": {
            "verifier_id": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
            "service": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
            "cursor": {"type": "integer", "minimum": 0, "maximum": 2**62},
            "lag": {"type": ["number", "null"], "minimum": 0},
            "age": {"type": "number", "minimum": 0, "maximum": 3600,
                    "description": "Seconds since the cursor reached this value"}},
    },
}

SECURITY_SCHEMES: dict[str, Json] = {
    "clientBasic": {"type": "http", "scheme": "basic",
                    "description": "Client authentication, `client_secret_basic` "
                                   "(RFC 6749 §2.3.1). `client_secret_post` sends "
                                   "`client_id`/`client_secret` in the form instead."},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "An access token (RFC 6750 §2.1); DPoP-bound tokens use the "
                              "`DPoP` scheme with a `DPoP` proof header (RFC 9449 §7)."},
    "metricsToken": {"type": "http", "scheme": "bearer",
                     "description": "The scrape token of `metrics.token` "
                                    "(`TESSERA_METRICS__TOKEN`), see docs/metrics.md."},
}

client_auth: list[Json] = [{"clientBasic": []}, {}]
"""HTTP Basic, or credentials in the form (``client_secret_post``, public ``client_id``)."""
bearer: list[Json] = [{"bearer": []}]


def form(properties: dict[str, Json], *, required: tuple[str, ...] = (),
         description: str = "", one_of: list[Json] | None = None) -> Json:
    """A form-encoded request body (RFC 6749 App. B). Unknown parameters are ignored
    (RFC 6749 §3.1), so the object stays open."""
    schema: Json = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if one_of:
        schema["oneOf"] = one_of
    body: Json = {"required": True, "content": {FORM: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def query(name: str, description: str, *, required: bool = False,
          schema: Json | None = None) -> Json:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or string()}


def ok_json(description: str, schema: Json, *, status: int = 200,
            no_store: bool = False) -> dict[str, Json]:
    response: Json = {"description": description,
                      "content": {"application/json": {"schema": schema}}}
    if no_store:
        response["headers"] = dict(_NO_STORE)
    return {str(status): response}


_ERROR_TEXT = {
    400: "Malformed or invalid request (`invalid_request`, `invalid_grant`, ...)",
    401: "Client or token authentication failed; `WWW-Authenticate` names the scheme",
    403: "Authenticated, but not allowed (`insufficient_scope`, `access_denied`)",
    404: "Not found",
    405: "Method not allowed; `Allow` lists the methods",
    429: "Too many failed attempts (`slow_down`); try again later",
    503: "The store is unavailable (`temporarily_unavailable`); try again shortly",
}


def oauth_errors(*statuses: int) -> dict[str, Json]:
    """RFC 6749 §5.2 JSON errors with ``Cache-Control: no-store``, one per status."""
    responses: dict[str, Json] = {}
    for status in statuses:
        headers = dict(_NO_STORE)
        if status == 401:
            headers["WWW-Authenticate"] = {"schema": {"type": "string"},
                                           "description": "RFC 6750 §3 / RFC 6749 §5.2"}
        responses[str(status)] = {"description": _ERROR_TEXT[status], "headers": headers,
                                  "content": {"application/json": {"schema": ref("OAuthError")}}}
    return responses


_TOO_LARGE_HEAD: Json = {"text/plain": {"schema": {"type": "string"}}}
"""The HTTP server's own answer to a request head it cannot parse or that exceeds its
limit (a query string of tens of kilobytes): ``400`` in plain text, before the app."""


def html_page(description: str, *statuses: int) -> dict[str, Json]:
    """HTML pages (login, consent, error pages) with the given statuses."""
    responses: dict[str, Json] = {}
    for status in statuses or (200,):
        content: Json = {"text/html": {"schema": {"type": "string"}}}
        if status == 400:
            content.update(_TOO_LARGE_HEAD)
        if status == 404:  # a path the router does not match (a path parameter with "\n")
            content["application/json"] = {"schema": ref("OAuthError")}
        responses[str(status)] = {
            "description": description if status == 200
            else f"{description}: {_ERROR_TEXT.get(status, 'error')}",
            "content": content}
    return responses


def redirect(description: str) -> dict[str, Json]:
    return {"303": {"description": description,
                    "headers": {"Location": {"required": True, "schema": {"type": "string"}}}}}


def operation(summary: str, *, responses: dict[str, Json], description: str = "",
              body: Json | None = None, parameters: list[Json] | None = None,
              security: list[Json] | None = None, tags: tuple[str, ...] = ()) -> Json:
    op: Json = {"summary": summary, "responses": responses}
    if description:
        op["description"] = description
    if tags:
        op["tags"] = list(tags)
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    if security is not None:
        op["security"] = security
    return op
