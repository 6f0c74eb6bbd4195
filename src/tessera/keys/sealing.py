"""Private keys encrypted at rest with AES-256-GCM under a key-encryption key (KEK).

The KEK comes from configuration (``TESSERA_KEYS__ENCRYPTION_KEY``); the key id is bound
as associated data so a sealed key cannot be swapped onto another row.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tessera.keys.errors import KeyError_, UnsealFailed

__all__ = ["Sealer"]

_PREFIX = "v1."
_NONCE = 12
_TAG = 16


class Sealer:
    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise KeyError_("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(kek)

    @classmethod
    def from_b64(cls, value: str) -> Sealer:
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except ValueError:
            raise KeyError_("the key-encryption key is not base64url") from None
        return cls(raw)

    @staticmethod
    def new_kek_b64() -> str:
        return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode("ascii")

    def seal(self, plaintext: bytes, *, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext, context.encode("utf-8"))
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, context: str) -> bytes:
        if not sealed.startswith(_PREFIX):
            raise KeyError_("unknown sealing format")
        try:
            blob = base64.b64decode(sealed[len(_PREFIX):], altchars=b"-_", validate=True)
        except ValueError:
            raise KeyError_("cannot unseal: the sealed value is not base64url") from None
        if len(blob) < _NONCE + _TAG:
            raise KeyError_("cannot unseal: the sealed value is truncated")
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], context.encode("utf-8"))
        except InvalidTag:
            raise UnsealFailed("cannot unseal: wrong key-encryption key or tampered row"
                               ) from None
