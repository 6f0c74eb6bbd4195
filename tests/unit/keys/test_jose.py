"""_jose: the one module touching raw keys. Header parsing and claim-time checks never
raise anything but ``TokenInvalid``, whatever the input."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tessera.keys import KeyError_, TokenInvalid, _jose
from tests.vectors.jwt_attacks import GARBAGE, b64

NOW = 1_800_000_000.0


@pytest.mark.parametrize("token", [*GARBAGE, "", b64(b"[" * 5000) + ".e30.e30",
                                   b64(b'{"kid": ' + b"9" * 5000 + b"}") + ".e30.e30",
                                   b64(b'{"kid": "\\ud800"}') + ".e30.e30"])
def test_unverified_header_raises_token_invalid_only(token: str) -> None:
    with pytest.raises(TokenInvalid) as refused:
        header = _jose.unverified_header(token)
        assert isinstance(header, dict)
        raise TokenInvalid("parsed")  # some garbage parses: that is fine, crashing is not
    assert refused.value.reason in {"malformed", "parsed"}


@pytest.mark.parametrize(("claims", "leeway", "expected"), [
    ({"exp": NOW}, 0, "expired"),
    ({"exp": NOW - 60}, 60, "expired"),
    ({"nbf": NOW + 1}, 0, "not_yet_valid"),
    ({"iat": NOW + 61}, 60, "issued_in_future"),
    ({"exp": "NOW"}, 0, "malformed"),
    ({"nbf": None}, 0, "malformed"),
    ({"iat": [1]}, 0, "malformed"),
    ({"exp": False}, 0, "malformed"),
])
def test_time_claims(claims: dict[str, object], leeway: float, expected: str) -> None:
    with pytest.raises(TokenInvalid) as refused:
        _jose._check_times(claims, now=NOW, leeway=leeway, verify_exp=True)
    assert refused.value.reason == expected


def test_time_claims_within_leeway_pass() -> None:
    _jose._check_times({"exp": NOW - 59, "nbf": NOW + 60, "iat": NOW + 60}, now=NOW,
                       leeway=60, verify_exp=True)
    _jose._check_times({"exp": NOW - 3600}, now=NOW, leeway=0, verify_exp=False)


def test_generate_refuses_algorithms_outside_the_allowlist() -> None:
    for alg in ("HS256", "none", "ES384", "RS384", "PS256", ""):
        with pytest.raises(KeyError_):
            _jose.generate(alg)


def test_encrypted_or_foreign_pems_are_key_errors() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw"))
    for pem in (encrypted, b"", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"):
        with pytest.raises(KeyError_):
            _jose.load_private_pem(pem)
    with pytest.raises(KeyError_):
        _jose.check_alg(ec.generate_private_key(ec.SECP384R1()), "ES256")
