"""Fuzz OAuth request parsing (token, introspection, revocation, admin, login forms):
``parse_params`` on an attacker's method, Content-Type, body and query string, the HTTP
Basic client credentials and the bearer token of the ``Authorization`` header.

Documented error: ``OAuthError`` (``invalid_request``, ``invalid_client``,
``invalid_token``), each answered as RFC 6749 §5.2 JSON.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["tessera", "urllib"]):
    from tessera.protocol.clients import _basic_credentials
    from tessera.protocol.errors import OAuthError
    from tessera.protocol.http import FORM_CONTENT_TYPE, OAuthRequest, error_response, parse_params
    from tessera.protocol.oidc.userinfo import bearer_token

from _harness import run

MAX_BODY = 16 * 1024
NAMES = ("grant_type", "code", "refresh_token", "client_id", "scope", "token", "a b", "é")


def _request(fdp: atheris.FuzzedDataProvider) -> OAuthRequest:
    method = fdp.PickValueInList(["POST", "GET", fdp.ConsumeUnicodeNoSurrogates(6)])
    ctype = fdp.PickValueInList([FORM_CONTENT_TYPE, f"{FORM_CONTENT_TYPE}; charset=utf-8",
                                 "application/json", fdp.ConsumeUnicodeNoSurrogates(40)])
    authorization = fdp.PickValueInList([
        "", "Basic " + fdp.ConsumeUnicodeNoSurrogates(60), "Bearer " +
        fdp.ConsumeUnicodeNoSurrogates(60), fdp.ConsumeUnicodeNoSurrogates(60)])
    query = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 200))
    body = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2 * MAX_BODY))
    headers = {"content-type": ctype}
    if authorization:
        headers["authorization"] = authorization
    return OAuthRequest(method=method, url="https://id.example/token", headers=headers,
                        body=body, query=query)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    request = _request(fdp)
    try:
        params = parse_params(request, max_body=MAX_BODY, allow_query=fdp.ConsumeBool())
        for name in NAMES:
            params.get(name)
        params.require("grant_type")
    except OAuthError as exc:
        error_response(exc)  # the answer must be buildable for every refusal
    authorization = request.headers.get("authorization", "")
    try:
        if authorization[:6].lower() == "basic ":
            _basic_credentials(authorization)
        bearer_token(request)
    except OAuthError as exc:
        error_response(exc)


if __name__ == "__main__":
    run(test_one_input, seeds=[b"\x00\x00" + b"grant_type=client_credentials&scope=a%20b",
                               b"\x00\x01Basic YTpi" + b"\x00" * 40])
