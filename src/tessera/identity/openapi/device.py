"""The device authorization grant (RFC 8628): the device's endpoint
(``/device_authorization``, §3.1) and the person's page (``/device``, §3.3). The device
then polls ``/token`` with ``urn:ietf:params:oauth:grant-type:device_code``."""

from __future__ import annotations

from tessera.identity.openapi.components import (
    Json,
    client_auth,
    form,
    html_page,
    oauth_errors,
    ok_json,
    operation,
    string,
)
from tessera.identity.openapi.context import DocumentContext

__all__ = ["paths"]

_RESPONSE: Json = {
    "type": "object",
    "required": ["device_code", "user_code", "verification_uri", "expires_in", "interval"],
    "properties": {
        "device_code": string("For polling the token endpoint (RFC 8628 §3.4)"),
        "user_code": string("To show the user: 8 of BCDFGHJKLMNPQRSTVWXZ as XXXX-XXXX"),
        "verification_uri": string("Where the user enters the code"),
        "verification_uri_complete": string("The same, with the code filled in"),
        "expires_in": {"type": "integer", "description": "Seconds the codes stay usable"},
        "interval": {"type": "integer", "description": "Seconds between polls"},
    },
}


def _device_authorization() -> Json:
    return {"post": operation(
        "Device authorization request (RFC 8628 §3.1)", tags=("oauth",), security=client_auth,
        description="Clients registered with the device code grant: public clients with "
                    "`client_id`, confidential ones with their secret.",
        body=form({"client_id": string(), "client_secret": string(),
                   "scope": string("Space-separated, at most the client's scopes"),
                   "resource": string("RFC 8707 resource indicator")}),
        responses={**ok_json("Codes issued", _RESPONSE, no_store=True),
                   **oauth_errors(400, 401, 429, 503)})}


def _device_page() -> Json:
    statuses = (200, 400, 401, 403, 429, 503)
    return {
        "get": operation("Enter a device's user code (RFC 8628 §3.3)", tags=("browser",),
                         parameters=[{"name": "user_code", "in": "query", "required": False,
                                      "schema": string(), "description": "Prefilled code "
                                      "(`verification_uri_complete`)"}],
                         responses=html_page("The code form", 200, 400, 503)),
        "post": operation(
            "Look a code up, sign in, approve or deny the device", tags=("browser",),
            description="Code lookups are rate limited per address. Approving or denying "
                        "needs the browser session cookie and the consent page's token.",
            body=form({"step": string(enum=["code", "login", "approve", "deny"]),
                       "user_code": string(), "username": string(), "password": string(),
                       "totp_code": string(), "csrf_token": string()}),
            responses=html_page("The next page, or the form again", *statuses)),
    }


def paths(ctx: DocumentContext) -> dict[str, Json]:
    if not ctx.device:
        return {}
    return {"/device_authorization": _device_authorization(), "/device": _device_page()}
