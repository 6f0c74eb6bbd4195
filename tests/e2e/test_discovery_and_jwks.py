"""Discovery (RFC 8414, OIDC Discovery 1.0) and JWKS (RFC 7517): what is advertised is
real, and access tokens (RFC 9068) verify with independent JOSE libraries from the JWKS
alone."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from tests.conftest import ISSUER
from tests.e2e.helpers import client_token, logged_in
from tests.support import TesseraDriver

_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint",
              "introspection_endpoint", "revocation_endpoint", "end_session_endpoint")


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration",
                                  "/.well-known/oauth-authorization-server"])
async def test_metadata_describes_this_issuer(tessera: TesseraDriver, path: str) -> None:
    response = await tessera.http.get(path)
    assert response.status_code == 200
    meta = response.json()
    assert meta["issuer"] == ISSUER
    for name in _ENDPOINTS:
        assert meta[name].startswith(f"{ISSUER}/"), name
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert {"authorization_code", "refresh_token", "client_credentials"} <= \
        set(meta["grant_types_supported"])
    assert "implicit" not in meta["grant_types_supported"]
    assert "password" not in meta["grant_types_supported"]
    assert meta["subject_types_supported"] == ["public"]
    assert "RS256" in meta["id_token_signing_alg_values_supported"]  # OIDC Core §15.1
    assert "none" not in meta["id_token_signing_alg_values_supported"]
    assert "openid" in meta["scopes_supported"]
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]
    assert set(meta["token_endpoint_auth_methods_supported"]) >= \
        {"client_secret_basic", "client_secret_post"}
    assert meta["authorization_response_iss_parameter_supported"] is True


async def test_every_advertised_endpoint_is_served(tessera: TesseraDriver) -> None:
    meta = (await tessera.http.get("/.well-known/openid-configuration")).json()
    for name in _ENDPOINTS:
        path = meta[name].removeprefix(ISSUER)
        method = "POST" if name in ("token_endpoint", "introspection_endpoint",
                                    "revocation_endpoint") else "GET"
        response = await tessera.http.request(method, path)
        assert response.status_code not in (404, 405, 500), (name, response.status_code)


async def _jwks(tessera: TesseraDriver) -> dict[str, Any]:
    response = await tessera.http.get("/jwks")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_jwks_publishes_public_keys_only(tessera: TesseraDriver) -> None:
    keys = (await _jwks(tessera))["keys"]
    assert len(keys) == 4  # active + next, for ES256 (access tokens) and RS256 (ID tokens)
    assert sorted(k["alg"] for k in keys) == ["ES256", "ES256", "RS256", "RS256"]
    kids = [k["kid"] for k in keys]
    assert len(set(kids)) == len(kids)
    for key in keys:
        assert key["use"] == "sig" and key["alg"] in ("RS256", "ES256", "EdDSA")
        assert not _PRIVATE_MEMBERS & set(key), key["kid"]


def _verify_with_pyjwt(jwks: dict[str, Any], token: str, *, audience: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    [jwk] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    key = jwt.PyJWK(jwk)
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=[jwk["alg"]], audience=audience, issuer=ISSUER,
        options={"require": ["iss", "exp", "aud", "sub", "iat", "jti", "client_id"]})
    return claims


def _verify_with_joserfc(jwks: dict[str, Any], token: str, *, audience: str
                         ) -> tuple[dict[str, Any], dict[str, Any]]:
    decoded = jose_jwt.decode(token, KeySet.import_key_set(jwks))  # type: ignore[arg-type]
    registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": audience},
        sub={"essential": True}, exp={"essential": True}, iat={"essential": True},
        jti={"essential": True}, client_id={"essential": True})
    registry.validate(decoded.claims)
    return dict(decoded.header), dict(decoded.claims)


async def test_user_access_token_verifies_from_jwks_alone(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    jwks = await _jwks(tessera)
    token = tokens["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["kid"] in {k["kid"] for k in jwks["keys"]}
    assert header["alg"] == "ES256"  # the default: cheap to sign and to verify
    claims = _verify_with_pyjwt(jwks, token, audience="https://api.example")
    assert claims["client_id"] == app.client_id and claims["scope"] == "api:read openid"
    assert claims["exp"] - claims["iat"] == 300
    jose_header, jose_claims = _verify_with_joserfc(jwks, token, audience="https://api.example")
    assert jose_header["typ"] == "at+jwt" and jose_header["kid"] == header["kid"]
    assert jose_claims == claims


async def test_service_access_token_verifies_from_jwks_alone(tessera: TesseraDriver) -> None:
    service = await tessera.client()
    token = await client_token(tessera, service)
    jwks = await _jwks(tessera)
    claims = _verify_with_pyjwt(jwks, token, audience="https://api.example")
    assert claims["sub"] == claims["client_id"] == service.client_id
    _verify_with_joserfc(jwks, token, audience="https://api.example")


async def test_tampered_token_fails_both_libraries(tessera: TesseraDriver) -> None:
    service = await tessera.client()
    token = await client_token(tessera, service)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "tessera:admin"
    evil = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{header}.{evil}.{signature}"
    jwks = await _jwks(tessera)
    with pytest.raises(jwt.InvalidSignatureError):
        _verify_with_pyjwt(jwks, forged, audience="https://api.example")
    with pytest.raises(Exception, match="signature"):
        _verify_with_joserfc(jwks, forged, audience="https://api.example")


async def test_id_token_verifies_from_jwks_alone(tessera: TesseraDriver) -> None:
    app, tokens = await logged_in(tessera)
    jwks = await _jwks(tessera)
    id_token = tokens["id_token"]
    header = jwt.get_unverified_header(id_token)
    [jwk] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(id_token, jwt.PyJWK(jwk), algorithms=[jwk["alg"]],
                        audience=app.client_id, issuer=ISSUER)
    assert claims["azp"] == app.client_id and claims["auth_time"] <= claims["iat"]
    assert header["typ"] != "at+jwt"
    assert header["alg"] == "RS256"  # OIDC Core §15.1, while access tokens are ES256
    access_alg = jwt.get_unverified_header(tokens["access_token"])["alg"]
    meta = (await tessera.http.get("/.well-known/openid-configuration")).json()
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["access_token_signing_alg_values_supported"] == [access_alg]
