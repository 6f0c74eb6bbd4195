"""Where Tessera may send a request or a browser: the one loopback rule, and what a
client's ``jwks_uri`` may be.

Outbound calls (upstream providers, client ``jwks_uri``, logout and SSF receivers) and
redirect targets must be https, except on loopback while Tessera itself runs on plain
http there (development and tests). Every such check asks ``is_loopback_host``."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["check_jwks_uri", "is_loopback_host"]


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


def check_jwks_uri(uri: str, *, issuer: str) -> str | None:
    """Why ``uri`` may not be fetched, or None if it may."""
    parts = urlsplit(uri)
    if not parts.hostname or parts.fragment or parts.username or parts.password:
        return "jwks_uri must be an absolute URL without credentials or fragment"
    if parts.scheme == "https":
        return None
    if (parts.scheme == "http" and is_loopback_host(parts.hostname)
            and urlsplit(issuer).scheme == "http" and is_loopback_host(urlsplit(issuer).hostname)):
        return None
    return "jwks_uri must use https (http only to loopback while the issuer is loopback)"
