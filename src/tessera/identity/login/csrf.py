"""Signed values of the browser pages (itsdangerous): CSRF tokens and the time source
they share with the pending login.

A CSRF token is a timed signature over three bindings, each checked on submission:

- the browser: a hash of its random CSRF cookie (``__Host-`` with an https issuer, so it
  cannot be planted from a sibling domain);
- the purpose: ``login``, ``totp``, ``enrol``, ``logout`` — a token of one form is
  nothing to another;
- the transaction it was rendered for: the authorization request the login completes
  (its client, redirect URI, state, PKCE challenge, nonce, scope), the pending login of
  the code step, the session that enrols a factor, the logout request. A cookie/token
  pair an attacker obtained for their own transaction does not fit the victim's, and
  every token expires after ``max_age`` seconds.

POSTs also carry the browser's ``Origin``/``Sec-Fetch-Site``: a form submitted from
another origin (a sibling subdomain included) is refused before any token is read.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Final

import orjson
from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from tessera.core.clock import Clock

__all__ = ["CSRF_MAX_AGE", "CsrfTokens", "fingerprint", "same_origin", "timed_serializer"]

CSRF_MAX_AGE: Final = 900
"""Seconds a rendered form stays submittable."""


class _ClockedSigner(TimestampSigner):
    """itsdangerous' timestamp signer on the service's ``Clock`` (tests move time)."""

    def __init__(self, *args: Any, clock: Clock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock.now())


def timed_serializer(key: bytes, salt: str, clock: Clock) -> URLSafeTimedSerializer:
    """Compact, URL-safe, HMAC-SHA256 signed and timestamped values under ``key``."""
    return URLSafeTimedSerializer(key, salt=salt, signer=_ClockedSigner,
                                  signer_kwargs={"clock": clock, "digest_method":
                                                 hashlib.sha256})


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def fingerprint(fields: Mapping[str, str]) -> str:
    """A stable digest of a transaction's fields (order does not matter)."""
    return _digest(orjson.dumps(dict(sorted(fields.items()))).decode())


class CsrfTokens:
    def __init__(self, key: bytes, clock: Clock, *, max_age: int = CSRF_MAX_AGE) -> None:
        self._serializer = timed_serializer(key, "tessera-csrf", clock)
        self._max_age = max_age

    def issue(self, cookie: str, purpose: str, transaction: str) -> str:
        return str(self._serializer.dumps(
            {"b": _digest(cookie), "p": purpose, "t": _digest(transaction)}))

    def check(self, token: str | None, *, cookie: str | None, purpose: str,
              transaction: str) -> bool:
        if not token or not cookie or len(token) > 512:
            return False
        try:
            data = self._serializer.loads(token, max_age=self._max_age)
        except BadData:
            return False
        if not isinstance(data, dict):
            return False
        return (hmac.compare_digest(str(data.get("b")), _digest(cookie))
                and data.get("p") == purpose
                and hmac.compare_digest(str(data.get("t")), _digest(transaction)))


def same_origin(headers: Mapping[str, str], issuer_origin: str) -> bool:
    """False when the browser says the form comes from a page of another origin.

    ``Sec-Fetch-Site`` (set by the browser, never by a page) decides when present: only
    ``same-origin`` and ``none`` (typed or bookmarked) pass; a sibling subdomain is
    ``same-site`` and fails. Without it (older browsers), an ``Origin`` other than
    ``null`` must name the host the request was sent to (``Host``) or the issuer.
    Clients that send neither (not browsers) pass: they carry no ambient cookies."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    sent = headers.get("origin")
    if sent is None or sent == "null":
        return True
    origin = _origin(sent)
    return origin == _origin(issuer_origin) or (
        origin.partition("://")[2] == _netloc(headers.get("host", ""),
                                              origin.partition("://")[0]))


_DEFAULT_PORTS: Final = {"http": ":80", "https": ":443"}


def _netloc(host: str, scheme: str) -> str:
    host = host.strip().lower()
    return host.removesuffix(_DEFAULT_PORTS.get(scheme, "\0"))


def _origin(url: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port."""
    scheme, _, rest = url.strip().partition("://")
    scheme = scheme.lower()
    return f"{scheme}://{_netloc(rest.partition('/')[0], scheme)}"
