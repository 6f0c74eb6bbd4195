"""Fuzz the DPoP proof check (RFC 9449 §4.3), shared by the token endpoint, userinfo, the
verifier SDK and the gateway: ``check_proof`` with an attacker's proof, method and URL.

Documented error: ``InvalidProof``. Inputs: raw strings, and proofs validly signed by the
key in their own ``jwk`` header with a fuzzed header member, a fuzzed payload, or real
claims with one replaced by any JSON value; the request method and URL are fuzzed too.
"""

from __future__ import annotations

import contextlib

import atheris

with atheris.instrument_imports(include=["tessera", "jwt", "joserfc"]):
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tessera.protocol.rfc9449 import InvalidProof, access_token_hash, check_proof

from _harness import b64, run, signed_variant

NOW = 1_800_000_000.0
URL = "https://id.example/token"
TOKEN = "at-" + "x" * 40
KEY = ed25519.Ed25519PrivateKey.generate()
JWK = {"kty": "OKP", "crv": "Ed25519", "x": b64(KEY.public_key().public_bytes_raw())}
HEADER = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": JWK}
CLAIMS = {"jti": "j-1", "htm": "POST", "htu": URL, "iat": NOW, "ath": access_token_hash(TOKEN),
          "nonce": "n-1"}


def _proof(fdp: atheris.FuzzedDataProvider) -> str:
    return signed_variant(fdp, header=HEADER, claims=CLAIMS, sign=KEY.sign,
                          header_members=["typ", "alg", "jwk", "jwk.kty", "jwk.crv", "jwk.x",
                                          "jwk.d", "kid", "crit"])


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    proof = _proof(fdp)
    method = "POST" if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(8)
    url = URL if fdp.ConsumeBool() else fdp.ConsumeUnicodeNoSurrogates(
        fdp.ConsumeIntInRange(0, 300))
    token = TOKEN if fdp.ConsumeBool() else None
    with contextlib.suppress(InvalidProof):
        check_proof(proof, method=method, url=url, now=NOW, access_token=token)


if __name__ == "__main__":
    run(test_one_input, seeds=[b"\x03" * 64, b"\x01" * 80, b"\x00eyJ"])
