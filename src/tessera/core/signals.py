"""Outbound signals: back-channel logout deliveries and Shared Signals (SSF) streams.

Pure rules only: the shapes stored, the event type URIs, the retry schedule, and what
makes a receiver address acceptable (``check_receiver``). I/O lives in
``tessera.identity.signals``.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tessera.core.urls import is_loopback_host

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "CAEP_ASSURANCE_LEVEL_CHANGE",
    "CAEP_CREDENTIAL_CHANGE",
    "CAEP_RISK_LEVEL_CHANGE",
    "CAEP_SESSION_REVOKED",
    "CAEP_TOKEN_CLAIMS_CHANGE",
    "DELIVERY_POLL",
    "DELIVERY_PUSH",
    "SSF_EVENTS_SUPPORTED",
    "SSF_STREAM_UPDATED",
    "SSF_VERIFICATION",
    "Delivery",
    "LogoutTarget",
    "ReceiverRefused",
    "RiskObservation",
    "SignalEvent",
    "Stream",
    "address_refused",
    "backoff",
    "check_receiver",
    "subject_key",
    "truncate_address",
]

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
CAEP_SESSION_REVOKED = _CAEP + "session-revoked"
CAEP_CREDENTIAL_CHANGE = _CAEP + "credential-change"
CAEP_TOKEN_CLAIMS_CHANGE = _CAEP + "token-claims-change"
CAEP_ASSURANCE_LEVEL_CHANGE = _CAEP + "assurance-level-change"
CAEP_RISK_LEVEL_CHANGE = _CAEP + "risk-level-change"
_SSF = "https://schemas.openid.net/secevent/ssf/event-type/"
SSF_VERIFICATION = _SSF + "verification"
SSF_STREAM_UPDATED = _SSF + "stream-updated"

SSF_EVENTS_SUPPORTED = (CAEP_SESSION_REVOKED, CAEP_CREDENTIAL_CHANGE, CAEP_TOKEN_CLAIMS_CHANGE,
                        CAEP_ASSURANCE_LEVEL_CHANGE, CAEP_RISK_LEVEL_CHANGE)
"""What a stream may request (verification and stream-updated are always delivered)."""

DELIVERY_PUSH = "urn:ietf:rfc:8935"
DELIVERY_POLL = "urn:ietf:rfc:8936"


@dataclass(frozen=True, slots=True)
class LogoutTarget:
    """A client's OIDC Back-Channel Logout registration."""

    client_id: str
    uri: str
    session_required: bool = False


@dataclass(frozen=True, slots=True)
class Stream:
    """An SSF event stream: owned by the receiver's client, in that client's tenant."""

    stream_id: str
    client_id: str
    tenant_id: str | None
    aud: str
    method: str
    endpoint_url: str | None
    events_requested: tuple[str, ...]
    description: str | None = None
    status: str = "enabled"
    status_reason: str | None = None
    default_subjects: str = "ALL"
    sealed_authorization: str | None = None
    """The push ``Authorization`` header the receiver asked for, sealed (never in clear)."""
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def events_delivered(self) -> tuple[str, ...]:
        return tuple(e for e in self.events_requested if e in SSF_EVENTS_SUPPORTED)


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """A non-revocation signal waiting for fan-out (credential change, claims change,
    assurance change, risk), written in the transaction of the change it describes."""

    kind: str
    tenant_id: str | None
    user_id: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One signed token for one receiver. ``token`` is signed once, when enqueued: every
    retry sends the same bytes (same ``jti``). ``dedupe`` makes enqueueing idempotent."""

    dedupe: str
    channel: str
    """``logout`` (back-channel logout) or ``ssf``."""
    target: str
    """The client id (logout) or the stream id (ssf)."""
    mode: str
    """``push`` or ``poll``."""
    jti: str
    token: str
    event: str
    tenant_id: str | None
    user_id: str | None
    """The user whose session ended (stored in the column ``subject``)."""
    created_at: float
    next_at: float
    expires_at: float
    id: int | None = None
    status: str = "pending"
    attempts: int = 0
    delivered_at: float | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class RiskObservation:
    """A login or refresh seen from an address (truncated) and user agent."""

    kind: str
    """``login``, ``login_failed``, ``refresh``, ``reuse``."""
    at: float
    tenant_id: str | None
    user_id: str | None
    family_id: str | None
    address: str | None
    user_agent: str | None


def subject_key(subject: dict[str, Any]) -> str:
    """A canonical key of an SSF subject identifier (RFC 9493), for storage and lookup."""
    fmt = subject.get("format")
    if fmt == "iss_sub":
        return f"iss_sub|{subject.get('iss')}|{subject.get('sub')}"
    if fmt == "opaque":
        return f"opaque|{subject.get('id')}"
    if fmt == "email":
        return f"email|{str(subject.get('email', '')).lower()}"
    raise ValueError("unsupported subject format")


def backoff(attempts: int, *, base: float, cap: float) -> float:
    """Seconds to wait after the ``attempts``-th failure: exponential, capped."""
    return float(min(cap, base * (2 ** max(0, attempts - 1))))


class ReceiverRefused(ValueError):
    """A receiver URL (or the address it resolves to) is not acceptable."""


def check_receiver(url: str, *, issuer: str) -> tuple[str, str, int]:
    """Static rules for a receiver URL; returns (scheme, host, port).

    https only, except http on loopback when the issuer itself is http on loopback
    (development and tests). No user info, no fragment. Addresses are checked again
    after resolution (``address_refused``)."""
    if len(url) > 2000:
        raise ReceiverRefused("the URL is too long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ReceiverRefused("the URL is malformed") from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ReceiverRefused("the URL must be an absolute https URL")
    if parts.username is not None or parts.password is not None:
        raise ReceiverRefused("the URL must not carry user information")
    if parts.fragment:
        raise ReceiverRefused("the URL must not have a fragment")
    if parts.scheme == "http":
        own = urlsplit(issuer)
        if not (own.scheme == "http" and is_loopback_host(own.hostname or "")
                and is_loopback_host(host)):
            raise ReceiverRefused("the URL must use https (http only on loopback while the "
                                  "issuer is http on loopback)")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def address_refused(address: str, *, issuer: str, allowed: tuple[str, ...] = ()) -> str | None:
    """Why a resolved address may not be contacted (None: it may). Private, link-local,
    reserved, multicast and unspecified addresses are refused unless inside one of the
    ``allowed`` networks; loopback only while the issuer is itself on loopback."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for net in allowed:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return None
        except ValueError:
            continue
    if ip.is_loopback:
        if is_loopback_host(urlsplit(issuer).hostname or ""):
            return None
        return "loopback address"
    if ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved:
        return "special-purpose address"
    if ip.is_private or not ip.is_global:
        return "private address"
    return None


def truncate_address(address: str | None, *, ipv4_bits: int, ipv6_bits: int) -> str | None:
    """The client address kept for risk signals: the network of ``ipv4_bits`` /
    ``ipv6_bits`` leading bits (0 keeps nothing), so a full address is never stored
    unless configured."""
    if not address:
        return None
    return _truncated(address, ipv4_bits, ipv6_bits)


@functools.lru_cache(maxsize=4096)
def _truncated(address: str, ipv4_bits: int, ipv6_bits: int) -> str | None:
    """``truncate_address``, remembered: every refresh parses its client's address (two
    ``ipaddress`` parses, ~20 µs), and a client refreshes from the same few."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    bits = ipv4_bits if ip.version == 4 else ipv6_bits
    if bits <= 0:
        return None
    net = ipaddress.ip_network(f"{ip}/{min(bits, ip.max_prefixlen)}", strict=False)
    return str(net.network_address) if bits >= ip.max_prefixlen else str(net)
