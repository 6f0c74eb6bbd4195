"""Sealer: AES-256-GCM under the KEK, the key id bound as associated data."""

from __future__ import annotations

import base64

import pytest

from tessera.keys import KeyError_, Sealer

PLAINTEXT = b"-----BEGIN PRIVATE KEY-----\nnot really\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def sealer() -> Sealer:
    return Sealer.from_b64(Sealer.new_kek_b64())


def test_round_trip_and_fresh_nonce_per_seal(sealer: Sealer) -> None:
    first = sealer.seal(PLAINTEXT, context="kid-1")
    second = sealer.seal(PLAINTEXT, context="kid-1")
    assert first != second and first.startswith("v1.")
    assert PLAINTEXT not in base64.urlsafe_b64decode(first[3:])
    assert sealer.open(first, context="kid-1") == PLAINTEXT == sealer.open(second,
                                                                             context="kid-1")


def test_wrong_kek_cannot_open(sealer: Sealer) -> None:
    sealed = sealer.seal(PLAINTEXT, context="kid-1")
    other = Sealer.from_b64(Sealer.new_kek_b64())
    with pytest.raises(KeyError_, match="wrong key-encryption key or tampered"):
        other.open(sealed, context="kid-1")


def test_context_binds_the_row(sealer: Sealer) -> None:
    """A sealed key copied onto another kid's row does not open."""
    sealed = sealer.seal(PLAINTEXT, context="kid-1")
    with pytest.raises(KeyError_):
        sealer.open(sealed, context="kid-2")


@pytest.mark.parametrize("position", [0, 5, 12, 20, -1])
def test_any_flipped_byte_is_detected(sealer: Sealer, position: int) -> None:
    sealed = sealer.seal(PLAINTEXT, context="kid-1")
    blob = bytearray(base64.urlsafe_b64decode(sealed[3:]))
    blob[position] ^= 0x01
    tampered = "v1." + base64.urlsafe_b64encode(bytes(blob)).decode()
    with pytest.raises(KeyError_):
        sealer.open(tampered, context="kid-1")


@pytest.mark.parametrize("sealed", [
    "v1.", "v1.AAAA", "v1.A", "v1.!!!!", "v1.\u00fc\u00fc\u00fc\u00fc", "v1." + "A" * 30,
    "v2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "plain pem",
])
def test_corrupt_rows_raise_key_error_only(sealer: Sealer, sealed: str) -> None:
    """A damaged row is a ``KeyError_`` the caller handles, not a stray ValueError."""
    with pytest.raises(KeyError_):
        sealer.open(sealed, context="kid-1")


def test_truncated_ciphertext_is_refused(sealer: Sealer) -> None:
    sealed = sealer.seal(PLAINTEXT, context="kid-1")
    with pytest.raises(KeyError_):
        sealer.open(sealed[:-8], context="kid-1")


@pytest.mark.parametrize("kek", ["", "c2hvcnQ", base64.urlsafe_b64encode(b"k" * 31).decode(),
                                 base64.urlsafe_b64encode(b"k" * 33).decode(), "\u00fc"])
def test_kek_must_be_32_bytes_of_base64url(kek: str) -> None:
    with pytest.raises(KeyError_):
        Sealer.from_b64(kek)
