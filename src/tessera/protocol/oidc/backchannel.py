"""OpenID Connect Back-Channel Logout 1.0 (outbound): the logout token,
https://openid.net/specs/openid-connect-backchannel-1_0.html

§2.4: ``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``events`` with the back-channel logout
member (an empty object), ``sub`` and/or ``sid``, never ``nonce``. §2.4 (errata 1): the
header's ``typ`` is ``logout+jwt``.
"""

from __future__ import annotations

from typing import Any

from tessera.core.signals import BACKCHANNEL_LOGOUT_EVENT
from tessera.keys import KeyRing

__all__ = ["LOGOUT_TOKEN_TYP", "logout_token"]

LOGOUT_TOKEN_TYP = "logout+jwt"


def logout_token(ring: KeyRing, *, issuer: str, client_id: str, jti: str, iat: int,
                 ttl: int, sub: str | None, sid: str | None) -> str:
    if sub is None and sid is None:
        raise ValueError("a logout token names a sub, a sid or both")
    claims: dict[str, Any] = {"iss": issuer, "aud": client_id, "iat": iat, "exp": iat + ttl,
                              "jti": jti, "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}
    if sub is not None:
        claims["sub"] = sub
    if sid is not None:
        claims["sid"] = sid
    return ring.sign(claims, typ=LOGOUT_TOKEN_TYP)
