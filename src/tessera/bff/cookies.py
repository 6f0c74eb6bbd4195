"""The BFF's two cookies, both ``__Host-`` prefixed, ``Secure``, ``HttpOnly``, ``Path=/``.

- ``__Host-tessera-bff`` — the session: ``SameSite=Strict``, lives at most
  ``session_absolute_timeout``. Its value is a random 256-bit handle signed with
  itsdangerous (``TimestampSigner``, key derived from ``TESSERA_BFF_SECRET_KEY``): a
  tampered value, or one older than the absolute timeout, is rejected before any lookup;
  the store only knows the handle's SHA-256.
- ``__Host-tessera-bff-login`` — one login in progress: ``SameSite=Lax`` (the callback
  is a top-level navigation coming back from the identity service, which may be on
  another site), lives ``login_timeout``, deleted by the callback.

``__Host-`` (RFC 6265bis §4.1.3.2) makes the browser accept the cookie only from a secure
origin, with ``Path=/`` and no ``Domain``: no sibling subdomain or plain-HTTP attacker can
plant or overwrite it. On ``http://localhost`` / ``127.0.0.1`` (development) the cookies
stay ``Secure`` and prefixed: browsers treat loopback as a secure context (Chromium,
Firefox) and accept them. ``public_url`` cannot be plain ``http`` anywhere else.
"""

from __future__ import annotations

from typing import Final

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request
from starlette.responses import Response

from tessera.core.clock import Clock

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "CookieJar"]

SESSION_COOKIE: Final = "__Host-tessera-bff"
LOGIN_COOKIE: Final = "__Host-tessera-bff-login"


class _ClockSigner(TimestampSigner):
    clock: Clock

    def get_timestamp(self) -> int:
        return int(self.clock.now())


class CookieJar:
    def __init__(self, signing_key: bytes, *, clock: Clock, session_max_age: int,
                 login_max_age: int) -> None:
        self._session = _ClockSigner(signing_key, salt="tessera-bff/session")
        self._login = _ClockSigner(signing_key, salt="tessera-bff/login")
        self._session.clock = self._login.clock = clock
        self._session_max_age = session_max_age
        self._login_max_age = login_max_age

    def set_session(self, response: Response, handle: str) -> None:
        response.set_cookie(SESSION_COOKIE, self._session.sign(handle).decode("ascii"),
                            max_age=self._session_max_age, path="/", secure=True,
                            httponly=True, samesite="strict")

    def set_login(self, response: Response, handle: str) -> None:
        response.set_cookie(LOGIN_COOKIE, self._login.sign(handle).decode("ascii"),
                            max_age=self._login_max_age, path="/", secure=True,
                            httponly=True, samesite="lax")

    def read_session(self, request: Request) -> str | None:
        return _unsign(self._session, request.cookies.get(SESSION_COOKIE),
                       self._session_max_age)

    def read_login(self, request: Request) -> str | None:
        return _unsign(self._login, request.cookies.get(LOGIN_COOKIE), self._login_max_age)

    @staticmethod
    def delete(response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=True, httponly=True,
                               samesite="strict" if name == SESSION_COOKIE else "lax")


def _unsign(signer: TimestampSigner, value: str | None, max_age: int) -> str | None:
    if not value or len(value) > 512:
        return None
    try:
        return signer.unsign(value, max_age=max_age).decode("ascii")
    except (BadSignature, UnicodeDecodeError):
        return None  # tampered, or older than max_age (SignatureExpired)
