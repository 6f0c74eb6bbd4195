"""RFC examples run through our code: JWS verification (RFC 7515 App. A, RFC 7519 §6.1),
Basic client credentials (RFC 6749 §2.3.1, App. B; RFC 7617), error bodies (§5.2) and
the access-token media type (RFC 9068 §4)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import get_default_algorithms

from tessera import jose
from tessera.keys import KeyRing, KeyState, TokenInvalid, new_signing_key
from tessera.protocol.clients import _basic_credentials
from tessera.protocol.errors import InvalidRequest
from tessera.protocol.http import error_response
from tests.vectors.jwt_attacks import b64, compact
from tests.vectors.rfc import (
    RFC6749_APPENDIX_B_CLIENT_ID,
    RFC6749_APPENDIX_B_ENCODED,
    RFC6749_BASIC_EXAMPLE,
    RFC6749_ERROR_EXAMPLE,
    RFC7515_A2_JWS,
    RFC7515_A2_N,
    RFC7515_A3_JWS,
    RFC7515_A3_X,
    RFC7515_A3_Y,
    RFC7515_CLAIMS,
    RFC7519_UNSECURED_JWT,
    RFC7617_BASIC_EXAMPLE,
)

EXP = RFC7515_CLAIMS["exp"]
ESCALATED = b'{"iss":"joe","exp":9999999999,"http://example.com/is_root":true}'


def _int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


RSA_KEY = rsa.RSAPublicNumbers(65537, _int(RFC7515_A2_N)).public_key()
EC_KEY = ec.EllipticCurvePublicNumbers(_int(RFC7515_A3_X), _int(RFC7515_A3_Y),
                                       ec.SECP256R1()).public_key()


def _decode(token: str, key: jose.PublicKey, alg: str, *, now: float, issuer: str = "joe",
            leeway: float = 0) -> dict[str, object]:
    try:
        return jose.decode(token, key, algorithms=[alg], issuer=issuer, leeway=leeway,
                           now=now, required=("iss", "exp"))
    except jose.JoseError as exc:
        raise TokenInvalid(exc.reason, exc.detail) from None


@pytest.mark.parametrize(("token", "key", "alg"), [
    (RFC7515_A2_JWS, RSA_KEY, "RS256"), (RFC7515_A3_JWS, EC_KEY, "ES256")])
def test_rfc7515_appendix_a_signatures_verify(token: str, key: jose.PublicKey,
                                              alg: str) -> None:
    assert _decode(token, key, alg, now=EXP - 1) == RFC7515_CLAIMS


def test_rfc7515_a2_expiry_is_checked_on_the_given_clock_with_leeway() -> None:
    assert _decode(RFC7515_A2_JWS, RSA_KEY, "RS256", now=EXP + 59, leeway=60)
    for now, leeway in ((EXP, 0), (EXP + 60, 60)):
        with pytest.raises(TokenInvalid) as refused:
            _decode(RFC7515_A2_JWS, RSA_KEY, "RS256", now=now, leeway=leeway)
        assert refused.value.reason == "expired"


@pytest.mark.parametrize(("change", "reason"), [
    ("issuer", "wrong_issuer"), ("alg", "bad_algorithm"), ("payload", "bad_signature"),
    ("signature", "bad_signature")])
def test_rfc7515_a2_refuses_any_change(change: str, reason: str) -> None:
    token, alg, issuer = RFC7515_A2_JWS, "RS256", "joe"
    head, body, sig = token.split(".")
    if change == "issuer":
        issuer = "joe2"
    elif change == "alg":
        alg = "ES256"
    elif change == "payload":
        token = f"{head}.{b64(ESCALATED)}.{sig}"
    else:
        token = f"{head}.{body}.{sig[:-4]}AAAA"
    with pytest.raises(TokenInvalid) as refused:
        _decode(token, RSA_KEY if alg == "RS256" else EC_KEY, alg, now=EXP - 1,
                issuer=issuer)
    assert refused.value.reason == reason


def test_rfc7519_unsecured_jwt_is_refused() -> None:
    with pytest.raises(TokenInvalid) as refused:
        _decode(RFC7519_UNSECURED_JWT, RSA_KEY, "RS256", now=EXP - 1)
    assert refused.value.reason == "bad_algorithm"
    ring = KeyRing([new_signing_key("ES256", state=KeyState.ACTIVE, now=0)])
    with pytest.raises(TokenInvalid) as refused:
        ring.verify(RFC7519_UNSECURED_JWT, typ=None, issuer="joe", audience=None,
                    now=EXP - 1, leeway=0)
    assert refused.value.reason == "unknown_kid"


@pytest.mark.parametrize("example", [RFC6749_BASIC_EXAMPLE, RFC7617_BASIC_EXAMPLE])
def test_basic_credentials_examples(example: tuple[str, str, str]) -> None:
    header, user, password = example
    assert _basic_credentials(header) == (user, password)


def test_rfc6749_appendix_b_form_encoded_client_id_in_basic() -> None:
    raw = f"{RFC6749_APPENDIX_B_ENCODED}:s%3Acret+x".encode()
    header = "Basic " + base64.b64encode(raw).decode()
    assert _basic_credentials(header) == (RFC6749_APPENDIX_B_CLIENT_ID, "s:cret x")


def test_rfc6749_error_response_shape() -> None:
    response = error_response(InvalidRequest("missing parameter"))
    assert response.status == 400
    assert response.json["error"] == RFC6749_ERROR_EXAMPLE["error"]
    assert set(response.json) == {"error", "error_description"}
    # §5.1 (by reference from §5.2): no caching of anything token-related.
    assert response.headers == {"cache-control": "no-store", "pragma": "no-cache"}


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT"])
def test_rfc9068_access_token_media_type_forms(typ: str) -> None:
    key = new_signing_key("ES256", state=KeyState.ACTIVE, now=0)
    claims = {"iss": "i", "exp": 100, "iat": 0}
    es256 = get_default_algorithms()["ES256"]
    token = compact({"alg": "ES256", "kid": key.kid, "typ": typ}, claims,
                    lambda data: es256.sign(data, key.private_key))
    assert KeyRing([key]).verify(token, typ="at+jwt", issuer="i", audience=None, now=50,
                                 leeway=0) == claims
