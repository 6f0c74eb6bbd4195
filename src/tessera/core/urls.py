"""Where Tessera may send a request or a browser: the one loopback rule.

Outbound calls (upstream providers, client ``jwks_uri``, logout and SSF receivers) and
redirect targets must be https, except on loopback while Tessera itself runs on plain
http there (development and tests). Every such check asks ``is_loopback_host``."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback_host"]


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` (and its subdomains, RFC 6761 §6.3) or a loopback IP literal."""
    if not host:
        return False
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
