"""What the document depends on: the features this process mounts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DocumentContext"]


@dataclass(frozen=True, slots=True)
class DocumentContext:
    issuer: str
    """``servers[0].url``: the issuer identifier is the service's base URL."""
    grant_types: tuple[str, ...]
    """Grants the token endpoint enables (``grant_types_supported``)."""
    dpop: bool = True
    """RFC 9449 enabled: the token and userinfo endpoints read a ``DPoP`` header."""
    console: bool = True
    """The admin console is mounted at ``/console``."""
    metrics: bool = True
    """``/metrics`` is served on this port (not on a separate ``metrics.port``)."""
    federation: bool = True
    """The ``/federation/*`` routes are mounted (``federation.enabled``)."""
    metrics_token: bool = False
    """``/metrics`` needs the scrape token (``metrics.token``)."""
    signals: bool = True
    """Outbound signals (``signals.enabled``): SSF routes and global token revocation."""
    device: bool = True
    """RFC 8628: ``/device_authorization`` and ``/device`` are served."""
