"""Security Event Token (SET) — RFC 8417, https://www.rfc-editor.org/rfc/rfc8417

With the subject identifiers of RFC 9493 and the event types of OpenID Shared Signals
Framework 1.0 and CAEP 1.0 (``core.signals``). Signing goes through the key ring: the
header carries ``typ: secevent+jwt`` (RFC 8417 §2.3), the claims never ``exp`` or
``sub`` (§2.2: a SET is not an access or ID token).
"""

from __future__ import annotations

from typing import Any

from tessera.keys import KeyRing

__all__ = ["SET_TYP", "iss_sub", "security_event_token"]

SET_TYP = "secevent+jwt"


def iss_sub(issuer: str, sub: str) -> dict[str, str]:
    """An ``iss_sub`` subject identifier (RFC 9493 §3.2.5)."""
    return {"format": "iss_sub", "iss": issuer, "sub": sub}


def security_event_token(ring: KeyRing, *, issuer: str, audience: str, jti: str, iat: int,
                         event_type: str, payload: dict[str, Any],
                         sub_id: dict[str, Any] | None, txn: str | None = None) -> str:
    """One SET carrying one event (SSF 1.0 §4.1.1: ``sub_id`` at the top level)."""
    claims: dict[str, Any] = {"iss": issuer, "aud": audience, "jti": jti, "iat": iat,
                              "events": {event_type: payload}}
    if sub_id is not None:
        claims["sub_id"] = sub_id
    if txn is not None:
        claims["txn"] = txn
    return ring.sign(claims, typ=SET_TYP)
