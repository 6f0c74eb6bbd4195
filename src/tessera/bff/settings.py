"""Settings of the backend-for-frontend (``TESSERA_BFF_*``), documented where declared.

The BFF is a confidential OAuth client of the identity service: ``client_id`` /
``client_secret`` of a client with the ``authorization_code`` and ``refresh_token``
grants, whose redirect URI is ``{public_url}/bff/callback`` (and, for logout,
``post_logout_redirect`` registered as a post-logout redirect URI).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tessera.core.urls import is_loopback_host
from tessera.settings import ServerSettings

__all__ = ["CSRF_HEADER", "BffSettings", "is_loopback_url", "origin_of"]

CSRF_HEADER: Final = "x-tessera-bff"
"""The custom request header every ``/bff/session``, ``/bff/logout`` and ``/bff/api/...``
call must carry (value ``1``). A cross-site page cannot send it without a CORS preflight,
which the BFF never grants."""

_ROUTE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (default ports dropped), lower-cased; ``""``
    for something that is not a URL (it matches no origin)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def is_loopback_url(url: str) -> bool:
    try:
        return is_loopback_host(urlsplit(url).hostname)
    except ValueError:
        return False


class BffSettings(BaseSettings):
    """What ``tessera bff`` is built from (``TESSERA_BFF_*``; keyword arguments win)."""

    model_config = SettingsConfigDict(env_prefix="TESSERA_BFF_", frozen=True,
                                      extra="forbid", env_nested_delimiter="__")

    public_url: str = Field(min_length=1)
    """Where browsers reach the BFF (and the single-page app it serves), e.g.
    ``https://app.example``: the origin the CSRF check accepts and the base of the
    redirect URI ``{public_url}/bff/callback``. ``https``, or ``http`` on a loopback host
    for development (browsers treat loopback as a secure context, so the ``__Host-``
    cookie with ``Secure`` works there too)."""
    issuer: str = Field(min_length=1)
    """The identity service's issuer, exactly as in its discovery document and tokens."""
    identity_url: str | None = None
    """Where the BFF reaches the identity service when not at ``issuer`` (an internal
    address). Browsers are still sent to the endpoints the discovery document names."""
    client_id: str = Field(min_length=1)
    """The BFF's confidential client at the identity service."""
    client_secret: SecretStr
    """Its secret (sent with HTTP Basic, ``client_secret_basic``)."""
    scope: str = "openid"
    """Scopes asked for at login (``openid`` is added when missing)."""
    secret_key: SecretStr
    """32 random bytes, base64url (``tessera bff --new-key`` prints one). Two keys are
    derived from it with HKDF: the AES-256-GCM key that seals every stored session (the
    tokens are encrypted at rest) and the key that signs the session cookie. Every
    replica of one BFF needs the same value; changing it ends every session."""
    redis_url: str | None = None
    """Where sessions live (Redis: shared by replicas, survives restarts). Without it they
    are kept in this process's memory (still sealed): development and tests only, lost on
    restart."""
    redis_prefix: str = "tessera:bff:"
    """Key prefix in Redis."""
    routes: dict[str, str] = Field(default_factory=dict)
    """Upstream APIs: ``{"orders": "https://orders.internal"}`` sends
    ``/bff/api/orders/<path>`` to ``https://orders.internal/<path>`` with the user's access
    token (``TESSERA_BFF_ROUTES='{"orders": "..."}'``). Unknown names are 404."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed besides ``public_url``'s own (rarely needed: the SPA should be
    served from the BFF's origin)."""
    post_login_redirect: str = "/"
    """Where the browser lands after login, unless ``/bff/login?return_to=/path`` names a
    local path."""
    post_logout_redirect: str | None = None
    """Sent as ``post_logout_redirect_uri`` to the identity service's end-session endpoint
    (must be registered for the client); defaults to ``{public_url}/``."""
    dpop: bool = False
    """Bind the tokens to a per-session DPoP key (RFC 9449): the BFF signs a proof for the
    token endpoint and for every upstream call, which gets ``Authorization: DPoP``."""
    revocation_feed: bool = False
    """Follow the identity service's revocation feed (the verifier SDK's follower, the way
    every API does) and refuse a session the moment its token, session, family, user or
    client is revoked — no introspection per ``session_check_interval`` while the feed is
    fresh (it is the fallback when stale). Needs ``audience`` and the ``tessera:events``
    scope on the BFF's client; ``TESSERA_VERIFIER_SOURCE``, ``..._REDIS_URL`` and
    ``..._MAX_STALENESS`` tune the follower."""
    audience: str | None = None
    """The audience of the BFF's access tokens (an upstream API's identifier), which the
    feed follower verifies them for. Required with ``revocation_feed``."""
    session_idle_timeout: int = Field(30 * 60, ge=60, le=7 * 86400)
    """A session unused this many seconds ends."""
    session_absolute_timeout: int = Field(12 * 3600, ge=300, le=30 * 86400)
    """A session ends this many seconds after login, used or not."""
    session_check_interval: float = Field(5.0, ge=0, le=300)
    """How long one answer of the identity service's introspection about the session's
    access token is trusted: a session revoked elsewhere is refused at most this many
    seconds later. 0: ask on every request."""
    refresh_margin: int = Field(30, ge=0, le=600)
    """Refresh the access token when it expires within this many seconds."""
    login_timeout: int = Field(600, ge=60, le=3600)
    """A login started at ``/bff/login`` must come back to ``/bff/callback`` within this."""
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Largest request body proxied to an upstream (413 above)."""
    upstream_timeout: float = Field(10.0, gt=0, le=300)
    """Upper bound in seconds on one upstream call (504 above)."""
    identity_timeout: float = Field(5.0, gt=0, le=60)
    """Upper bound in seconds on one call to the identity service."""
    static_dir: str | None = None
    """A directory served at ``/`` (the single-page app), e.g. ``examples/bff-spa``."""
    server: ServerSettings = ServerSettings()
    """HTTP server bounds (``TESSERA_BFF_SERVER__MAX_HEADER_BYTES`` ...)."""

    @field_validator("public_url", "issuer")
    @classmethod
    def _absolute(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _secure_origin(cls, value: str) -> str:
        if urlsplit(value).scheme != "https" and not is_loopback_url(value):
            raise ValueError("must be https (plain http only on a loopback host, for "
                             "development): the session cookie is __Host- and Secure")
        return value

    @field_validator("secret_key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        try:
            key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("must be base64url") from None
        if len(key) < 32:
            raise ValueError("must be at least 32 random bytes (base64url)")
        return value

    @field_validator("routes")
    @classmethod
    def _routes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not _ROUTE_NAME.fullmatch(name):
                raise ValueError(f"route name {name!r}: lower-case letters, digits, . _ -")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname \
                    or parts.query or parts.fragment:
                raise ValueError(f"route {name!r}: {url!r} is not an http(s) base URL")
        return {name: url.rstrip("/") for name, url in value.items()}

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not origin_of(origin) or urlsplit(origin).scheme not in ("http", "https"):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port])")
        return value

    @field_validator("post_login_redirect")
    @classmethod
    def _local(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("//") or "\\" in value:
            raise ValueError("must be a local path such as /")
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> BffSettings:
        if self.session_idle_timeout > self.session_absolute_timeout:
            raise ValueError("session_idle_timeout exceeds session_absolute_timeout")
        if self.revocation_feed and not self.audience:
            raise ValueError("revocation_feed needs audience (TESSERA_BFF_AUDIENCE)")
        return self

    @property
    def secret_key_bytes(self) -> bytes:
        raw = self.secret_key.get_secret_value()
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/bff/callback"

    @property
    def origins(self) -> frozenset[str]:
        return frozenset({origin_of(self.public_url),
                          *(origin_of(o) for o in self.allowed_origins)})

    @property
    def identity_base(self) -> str:
        return (self.identity_url or self.issuer).rstrip("/")
