"""What a service accepts: issuer, audience, scopes, clock leeway, staleness bound."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

__all__ = ["MAX_LEEWAY", "VerificationPolicy"]

MAX_LEEWAY = 60.0
"""Upper bound on clock-skew leeway in seconds (DESIGN §9)."""


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

    def requiring(self, scopes: Iterable[str]) -> VerificationPolicy:
        """The same policy with ``scopes`` required as well (for a route)."""
        return replace(self, required_scopes=self.required_scopes | frozenset(scopes))
