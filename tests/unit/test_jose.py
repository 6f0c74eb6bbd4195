"""tessera.jose: the one module calling a JOSE library. Header parsing and claim-time
checks never raise anything but ``JoseError``, whatever the input."""

from __future__ import annotations

import base64

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tessera import jose
from tessera.jose import JoseError
from tests.vectors.jwt_attacks import GARBAGE, b64

NOW = 1_800_000_000.0


@pytest.mark.parametrize("token", [*GARBAGE, "", b64(b"[" * 5000) + ".e30.e30",
                                   b64(b'{"kid": ' + b"9" * 5000 + b"}") + ".e30.e30",
                                   b64(b'{"kid": "\\ud800"}') + ".e30.e30"])
def test_unverified_header_raises_token_invalid_only(token: str) -> None:
    with pytest.raises(JoseError) as refused:
        header = jose.unverified_header(token)
        assert isinstance(header, dict)
        raise JoseError("parsed")  # some garbage parses: that is fine, crashing is not
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
    with pytest.raises(JoseError) as refused:
        jose.check_times(claims, now=NOW, leeway=leeway, verify_exp=True)
    assert refused.value.reason == expected


def test_time_claims_within_leeway_pass() -> None:
    jose.check_times({"exp": NOW - 59, "nbf": NOW + 60, "iat": NOW + 60}, now=NOW,
                       leeway=60, verify_exp=True)
    jose.check_times({"exp": NOW - 3600}, now=NOW, leeway=0, verify_exp=False)


def test_generate_refuses_algorithms_outside_the_allowlist() -> None:
    for alg in ("HS256", "none", "ES384", "RS384", "PS256", ""):
        with pytest.raises(JoseError):
            jose.generate(alg)


def test_encrypted_or_foreign_pems_are_key_errors() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw"))
    for pem in (encrypted, b"", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"):
        with pytest.raises(JoseError):
            jose.load_private_pem(pem)
    with pytest.raises(JoseError):
        jose.check_alg(ec.generate_private_key(ec.SECP384R1()), "ES256")


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_verify_accepts_the_signers_token_and_nothing_else(alg: str) -> None:
    """The hot path: a token of ``Signer`` verifies with the prepared key; a flipped
    signature, another key, or a stripped signature does not."""
    key = jose.generate(alg)
    token = jose.Signer(key, alg=alg, kid="k").sign({"sub": "u"}, typ="at+jwt")
    verification = jose.VerificationKey("k", alg, key.public_key())
    assert jose.read_header(token).alg == alg
    assert jose.verify(token, verification) == b'{"sub":"u"}'
    head, body, sig = token.split(".")
    other = jose.VerificationKey("k", alg, jose.generate(alg).public_key())
    for bad, using in ((f"{head}.{body}.{sig[::-1]}", verification), (token, other),
                       (f"{head}.{body}.", verification)):
        with pytest.raises(JoseError) as refused:
            jose.verify(bad, using)
        assert refused.value.reason in {"bad_signature", "malformed"}


def test_read_header_refuses_crit_and_non_objects() -> None:
    for header in (b'{"alg":"ES256","crit":["b64"],"b64":false}', b'"ES256"', b"[1]"):
        with pytest.raises(JoseError) as refused:
            jose.read_header(b64(header) + ".e30.sig")
        assert refused.value.reason == "malformed"


def test_a_verification_key_must_fit_its_algorithm() -> None:
    with pytest.raises(JoseError):
        jose.VerificationKey("k", "RS256", jose.generate("ES256").public_key())
    with pytest.raises(JoseError):
        jose.load_public_jwk("ES256", jose.public_jwk(jose.generate("EdDSA")))


def test_es256_signatures_are_fixed_size_r_and_s_that_pyjwt_accepts() -> None:
    """RFC 7518 §3.4: R and S as 32-byte big-endian integers, zero-padded: one in 128
    signatures has an R or S below 2**248, so a few hundred hit the padding."""
    key = jose.generate("ES256")
    signer = jose.Signer(key, alg="ES256", kid="k")
    pyjwt = jwt.get_algorithm_by_name("ES256")
    public = key.public_key()
    for n in range(400):
        token = signer.sign({"n": n}, typ="JWT")
        head, body, sig = token.split(".")
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        assert len(raw) == 64
        assert pyjwt.verify(f"{head}.{body}".encode(), public, raw)
