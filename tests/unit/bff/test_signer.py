"""``ProofSigner`` (the client half of RFC 9449) against the server-side checks, and its
key surviving a round trip through its private JWK (how the BFF stores it)."""

from __future__ import annotations

import pytest

from tessera.protocol.rfc9449 import InvalidProof, ProofSigner, check_proof, jwk_thumbprint

NOW = 1_800_000_000.0


def test_a_proof_passes_the_server_checks() -> None:
    signer = ProofSigner.generate()
    proof = signer.proof("get", "https://api.example/orders?x=1#f", now=NOW,
                         access_token="tok", nonce="n-1")
    checked = check_proof(proof, method="GET", url="https://api.example/orders", now=NOW,
                          access_token="tok")
    assert checked.jkt == signer.jkt == jwk_thumbprint(signer.public_jwk)
    assert checked.nonce == "n-1" and checked.htu == "https://api.example/orders"
    assert "d" not in signer.public_jwk


def test_the_key_survives_its_private_jwk() -> None:
    signer = ProofSigner.generate()
    again = ProofSigner.from_jwk(signer.private_jwk())
    assert again.jkt == signer.jkt
    with pytest.raises(InvalidProof):
        check_proof(again.proof("POST", "https://a.example/x", now=NOW), method="POST",
                    url="https://a.example/x", now=NOW, access_token="tok")  # no ath


def test_a_public_key_cannot_sign() -> None:
    with pytest.raises(ValueError):
        ProofSigner.from_jwk(ProofSigner.generate().public_jwk)
