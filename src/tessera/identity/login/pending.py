"""The pending login between the password and the TOTP code.

The password step ends with a small signed record in the code form: who passed the
password, for which client, until when, bound to the browser's CSRF cookie. Never the
password, nothing secret: signed and timestamped with itsdangerous (HMAC-SHA256 under a
key derived from the KEK for this purpose only), it cannot be forged; the short life and
the cookie binding make a copied one useless elsewhere. Submitting it again only allows
another code attempt, and codes are throttled.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

from itsdangerous import BadData

from tessera.core.clock import Clock
from tessera.identity.login.csrf import timed_serializer

__all__ = ["PendingLogin", "PendingLogins"]

_TTL: Final = 300
_MAX_LENGTH: Final = 1024


@dataclass(frozen=True, slots=True)
class PendingLogin:
    user_id: str
    client_id: str


def _binding(csrf_cookie: str) -> str:
    return hashlib.sha256(csrf_cookie.encode()).hexdigest()[:32]


class PendingLogins:
    def __init__(self, key: bytes, clock: Clock, *, ttl: int = _TTL) -> None:
        self._serializer = timed_serializer(key, "tessera-pending-login", clock)
        self._ttl = ttl

    def issue(self, login: PendingLogin, *, csrf_cookie: str) -> str:
        return str(self._serializer.dumps({"u": login.user_id, "c": login.client_id,
                                           "b": _binding(csrf_cookie)}))

    def open(self, value: str | None, *, csrf_cookie: str | None,
             client_id: str) -> PendingLogin | None:
        """The pending login, or None if forged, expired, for another client or issued to
        another browser."""
        if not value or not csrf_cookie or len(value) > _MAX_LENGTH or not value.isascii():
            return None
        try:
            claims = self._serializer.loads(value, max_age=self._ttl)
        except BadData:
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("u"), str):
            return None
        if claims.get("c") != client_id \
                or not hmac.compare_digest(str(claims.get("b")), _binding(csrf_cookie)):
            return None
        return PendingLogin(user_id=claims["u"], client_id=client_id)
