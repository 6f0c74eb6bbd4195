"""Keys for one purpose each (CSRF, DPoP nonces, TOTP secrets, refresh successors…),
derived from the key-encryption key with HKDF-SHA256 (RFC 5869), so one secret is
configured and no two features share a key."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["derive_key"]

def derive_key(kek_b64: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the KEK with HKDF-SHA256."""
    kek = base64.urlsafe_b64decode(kek_b64 + "=" * (-len(kek_b64) % 4))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=f"tessera/{purpose}".encode()).derive(kek)
