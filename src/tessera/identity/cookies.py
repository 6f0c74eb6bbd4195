"""Browser cookies of the identity service and the console: names and attributes.

With an ``https`` issuer (or ``security.cookie_secure``) every cookie is ``Secure`` and
named with the ``__Host-`` prefix (RFC 6265bis §4.1.3.2): the browser accepts it only
from a secure origin, with ``Path=/`` and no ``Domain``, so neither a sibling subdomain
nor a network attacker on plain HTTP can plant or overwrite it. Cookies are read under
that name only; an unprefixed one a client sends is ignored. With a plain-``http``
issuer (development) the prefix cannot be used and the cookie is not ``Secure``.
All are ``HttpOnly``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from starlette.responses import Response

from tessera.settings import Settings

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "CookiePolicy", "cookie_policy"]

SESSION_COOKIE = "tessera_session"
"""The browser's login session at the identity service (``__Host-`` prefixed over https)."""
CSRF_COOKIE = "tessera_csrf"


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    secure: bool

    def name(self, base: str) -> str:
        return f"__Host-{base}" if self.secure else base

    def read(self, cookies: Mapping[str, str], base: str) -> str | None:
        return cookies.get(self.name(base))

    def set(self, response: Response, base: str, value: str, *,
            samesite: Literal["lax", "strict"] = "lax") -> None:
        response.set_cookie(self.name(base), value, httponly=True, samesite=samesite,
                            secure=self.secure, path="/")

    def delete(self, response: Response, base: str) -> None:
        response.delete_cookie(self.name(base), path="/", secure=self.secure,
                               httponly=True, samesite="lax")


def cookie_policy(settings: Settings) -> CookiePolicy:
    return CookiePolicy(secure=settings.issuer.lower().startswith("https://")
                        or settings.security.cookie_secure)
