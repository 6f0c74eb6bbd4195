"""What a service accepts: issuer, audience, scopes, clock leeway, staleness bound, and
how strong and how recent the user's authentication must be (RFC 9470)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from tessera.core.acr import DEFAULT_ACR_LEVELS

__all__ = ["DEFAULT_ACR_LEVELS", "MAX_ENVELOPE_TTL", "MAX_LEEWAY", "VerificationPolicy"]

MAX_LEEWAY = 60.0
"""Upper bound on clock-skew leeway in seconds (DESIGN §9)."""

MAX_ENVELOPE_TTL: Final = 3600.0
"""Hard upper bound on an identity envelope's lifetime (``exp - iat``), in seconds; the
revocation history keeps events at least this long past their expiry."""

_ACR: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
"""An acr value is sent in a quoted challenge parameter: no space, ``"`` or ``\\``."""


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """The checks one service (or one route) applies to every access token."""

    issuer: str
    """Exact ``iss`` value (RFC 9068 §4 step 3); no normalisation, no prefix match."""

    audience: str
    """This service's identifier; it must be an element of the token's ``aud``."""

    required_scopes: frozenset[str] = field(default_factory=frozenset)
    """Every one of these must appear in the token's ``scope``."""

    leeway: float = 30.0
    """Clock-skew allowance for ``exp``, ``nbf`` and ``iat``, 0..60 seconds."""

    max_staleness: float | None = None
    """If set, deny (``stale_state``) when the revocation state has not heard from the bus
    for longer than this many seconds: the fail-closed behaviour of ``strict`` routes.
    ``None`` accepts whatever the local state knows."""

    min_acr: str | None = None
    """If set, the token's ``acr`` must be this level or a stronger one in ``acr_levels``
    (RFC 9470 §3: ``insufficient_user_authentication`` with ``acr_values`` otherwise)."""

    max_auth_age: int | None = None
    """If set, at most this many seconds (plus ``leeway``) may have passed since the
    token's ``auth_time`` (RFC 9470 §3: the challenge carries ``max_age``)."""

    acr_levels: tuple[str, ...] = DEFAULT_ACR_LEVELS
    """Authentication context classes, weakest first; an ``acr`` not listed satisfies no
    ``min_acr``. The identity service issues ``urn:tessera:acr:pwd`` < ``...:mfa``."""

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("issuer is required")
        if not self.audience:
            raise ValueError("audience is required")
        if not 0.0 <= self.leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")
        if self.max_staleness is not None and self.max_staleness <= 0:
            raise ValueError("max_staleness must be positive")
        if not isinstance(self.required_scopes, frozenset):
            object.__setattr__(self, "required_scopes", frozenset(self.required_scopes))
        object.__setattr__(self, "acr_levels", tuple(self.acr_levels))
        if not all(isinstance(v, str) and _ACR.fullmatch(v) for v in self.acr_levels) \
                or len(set(self.acr_levels)) != len(self.acr_levels):
            raise ValueError("acr_levels must be distinct values without spaces or quotes")
        if self.min_acr is not None and self.min_acr not in self.acr_levels:
            raise ValueError(f"min_acr {self.min_acr!r} is not one of acr_levels "
                             f"{list(self.acr_levels)!r}")
        if self.max_auth_age is not None and self.max_auth_age < 0:
            raise ValueError("max_auth_age must not be negative")

    def requiring(self, scopes: Iterable[str]) -> VerificationPolicy:
        """The same policy with ``scopes`` required as well (for a route)."""
        return replace(self, required_scopes=self.required_scopes | frozenset(scopes))

    def stepping_up(self, *, min_acr: str | None = None,
                    max_auth_age: int | None = None) -> VerificationPolicy:
        """The same policy with these authentication requirements (for a route); ``None``
        keeps the policy's own."""
        if min_acr is None and max_auth_age is None:
            return self
        return replace(self, min_acr=min_acr if min_acr is not None else self.min_acr,
                       max_auth_age=(max_auth_age if max_auth_age is not None
                                     else self.max_auth_age))
