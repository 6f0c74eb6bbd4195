"""Authentication context classes (``acr``) and methods (``amr``, RFC 8176), ordered.

One ordering, weakest first, answers "is this authentication strong enough?" for the
authorization endpoint (``acr_values``), the verifier SDK (``min_acr``) and the docs::

    urn:tessera:acr:pwd   password                  amr ["pwd"]
    urn:tessera:acr:mfa   password + TOTP           amr ["pwd", "otp"]

A value outside the ordering is unknown: it satisfies nothing and, when requested,
cannot be met.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "ACR_MFA",
    "ACR_PASSWORD",
    "AMR_OTP",
    "AMR_PASSWORD",
    "DEFAULT_ACR_LEVELS",
    "acr_satisfies",
    "weakest_known",
]

ACR_PASSWORD: Final = "urn:tessera:acr:pwd"
ACR_MFA: Final = "urn:tessera:acr:mfa"
DEFAULT_ACR_LEVELS: Final[tuple[str, ...]] = (ACR_PASSWORD, ACR_MFA)
"""Weakest first."""

AMR_PASSWORD: Final = "pwd"
"""RFC 8176 §2: password-based authentication."""
AMR_OTP: Final = "otp"
"""RFC 8176 §2: one-time password (here TOTP, RFC 6238)."""


def acr_satisfies(have: str | None, required: str,
                  levels: Sequence[str] = DEFAULT_ACR_LEVELS) -> bool:
    """``have`` is ``required`` or stronger; an unknown or missing ``have`` is not, and
    an unknown ``required`` is met by nothing."""
    if have is None or have not in levels or required not in levels:
        return False
    return levels.index(have) >= levels.index(required)


def weakest_known(requested: Iterable[str],
                  levels: Sequence[str] = DEFAULT_ACR_LEVELS) -> str | None:
    """The weakest of the ``requested`` values that ``levels`` knows (any listed value is
    acceptable, OIDC Core §3.1.2.1 ``acr_values``); ``None`` if none is known."""
    known = [levels.index(value) for value in requested if value in levels]
    return levels[min(known)] if known else None
