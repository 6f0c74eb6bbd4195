"""Device authorization (RFC 8628): device codes and the user codes people type.

A user code is 8 characters of the base-20 alphabet of RFC 8628 §6.1 (consonants only: no
vowels to spell words, no easily confused characters), shown as ``XXXX-XXXX`` — about
2^34.5 values, which with the endpoint's rate limit and short expiry is the margin §5.1
asks for. Input is normalised before lookup (§6.1): case and any dashes or spaces the
user typed do not matter. Both codes are stored only as hashes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

__all__ = [
    "APPROVED",
    "CONSUMED",
    "DENIED",
    "PENDING",
    "USER_CODE_ALPHABET",
    "USER_CODE_LENGTH",
    "DeviceCode",
    "format_user_code",
    "new_user_code",
    "normalise_user_code",
]

USER_CODE_ALPHABET: Final = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH: Final = 8

PENDING: Final = "pending"
APPROVED: Final = "approved"
DENIED: Final = "denied"
CONSUMED: Final = "consumed"


def new_user_code() -> str:
    """A fresh user code, normalised (8 characters, no dash)."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def format_user_code(code: str) -> str:
    """``BCDFGHJK`` → ``BCDF-GHJK`` (how it is shown)."""
    return f"{code[:4]}-{code[4:]}"


def normalise_user_code(text: str | None) -> str | None:
    """What the user typed → the stored form, or None if it cannot be a user code."""
    if not text or len(text) > 32:
        return None
    code = "".join(ch for ch in text.upper() if ch not in "- \t")
    if len(code) != USER_CODE_LENGTH or any(ch not in USER_CODE_ALPHABET for ch in code):
        return None
    return code


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """One device authorization request (RFC 8628 §3.2), stored by the hashes of its
    device code and user code.

    ``status``: ``pending`` until the user approves or denies it at ``/device``;
    ``consumed`` once tokens were issued for it (a device code yields tokens once)."""

    device_code_hash: str
    user_code_hash: str
    client_id: str
    tenant_id: str
    scope: frozenset[str]
    created_at: float
    expires_at: float
    interval: int
    status: str = PENDING
    last_polled_at: float | None = None
    user_id: str | None = None
    sid: str | None = None
    decided_at: float | None = None
    audience: tuple[str, ...] = ()
    client_address: str | None = None
    """Where the device asked from (the device session shows it)."""

    def expired(self, now: float) -> bool:
        return now >= self.expires_at
