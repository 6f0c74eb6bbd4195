"""Key and token-signature errors.

    KeyError_            a key cannot be generated, sealed or unsealed
      UnsealFailed       a sealed key does not open with this key-encryption key
    TokenInvalid         a JWS failed verification (reason says which check)
"""

from __future__ import annotations

__all__ = ["KeyError_", "TokenInvalid", "UnsealFailed"]


class KeyError_(Exception):
    """A key cannot be generated, sealed or unsealed."""


class UnsealFailed(KeyError_):
    """A sealed value does not open: the key-encryption key is not the one it was sealed
    with, or the row was tampered with."""


class TokenInvalid(Exception):
    """A token failed verification. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
