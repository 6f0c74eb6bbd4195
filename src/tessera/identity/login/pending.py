"""The pending login between the password and the TOTP code.

The password step ends with a small signed record in the code form: who passed the
password, for which client, until when, bound to the browser's CSRF cookie. Never the
password, nothing secret: HMAC-SHA256 under a key derived from the KEK makes it
unforgeable, the short life and the cookie binding make a copied one useless elsewhere.
Submitting it again only allows another code attempt, and codes are rate-limited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

import orjson

from tessera.core.clock import Clock

__all__ = ["PendingLogin", "PendingLogins"]

_TTL: Final = 300
_MAX_LENGTH: Final = 1024


@dataclass(frozen=True, slots=True)
class PendingLogin:
    user_id: str
    client_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PendingLogins:
    def __init__(self, key: bytes, clock: Clock, *, ttl: int = _TTL) -> None:
        self._key = key
        self._clock = clock
        self._ttl = ttl

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    @staticmethod
    def _binding(csrf_cookie: str) -> str:
        return _b64(hashlib.sha256(csrf_cookie.encode()).digest()[:16])

    def issue(self, login: PendingLogin, *, csrf_cookie: str) -> str:
        payload = _b64(orjson.dumps({
            "u": login.user_id, "c": login.client_id, "b": self._binding(csrf_cookie),
            "exp": int(self._clock.now()) + self._ttl}))
        return f"{payload}.{self._mac(payload)}"

    def open(self, value: str | None, *, csrf_cookie: str | None,
             client_id: str) -> PendingLogin | None:
        """The pending login, or None if forged, expired, for another client or issued to
        another browser."""
        if not value or not csrf_cookie or len(value) > _MAX_LENGTH or not value.isascii():
            return None
        payload, _, mac = value.partition(".")
        if not hmac.compare_digest(self._mac(payload), mac):
            return None
        try:
            claims = orjson.loads(_unb64(payload))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("u"), str) \
                or not isinstance(claims.get("exp"), int):
            return None
        if claims["exp"] <= self._clock.now() or claims.get("c") != client_id \
                or not hmac.compare_digest(str(claims.get("b")), self._binding(csrf_cookie)):
            return None
        return PendingLogin(user_id=claims["u"], client_id=client_id)
