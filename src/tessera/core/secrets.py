"""High-entropy secrets: generation, hashing at rest, constant-time comparison.

Refresh tokens, authorization codes and client secrets are 256-bit random values, so a
single SHA-256 is the right hash at rest (a slow password hash adds nothing against
brute force of 2**256 and costs every request). Passwords use argon2id elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["constant_time_equal", "derive_secret", "new_id", "new_secret", "token_hash"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_secret(nbytes: int = 32) -> str:
    """A fresh URL-safe random secret with ``nbytes`` of entropy."""
    return _b64url(secrets.token_bytes(nbytes))


def new_id(nbytes: int = 16) -> str:
    """A fresh URL-safe random identifier (session, refresh family, token, stream) that
    never starts with ``-``: operators pass these to the CLI, which would read one that
    does (one in 64) as an option. Redrawing keeps the other 63/64 of the space."""
    while True:
        value = secrets.token_urlsafe(nbytes)
        if not value.startswith("-"):
            return value


def token_hash(value: str) -> str:
    """SHA-256 of a secret, base64url: what we store and what audit events carry."""
    return _b64url(hashlib.sha256(value.encode("utf-8")).digest())


def derive_secret(key: bytes, label: str, value: str) -> str:
    """Deterministically derive a secret from ``value`` under a server key (HMAC-SHA256).

    Used for refresh rotation: the successor of a refresh token is a function of the
    token itself, so a retried request can be answered with the same successor while
    only hashes are stored.
    """
    mac = hmac.new(key, f"{label}\x00{value}".encode(), hashlib.sha256).digest()
    return _b64url(mac)


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two strings without leaking where they differ."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
