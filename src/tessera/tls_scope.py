"""The client certificate of a request, as the ASGI TLS extension says it.

ASGI TLS extension: https://asgi.readthedocs.io/en/latest/specs/tls.html

uvicorn does not fill ``scope["extensions"]["tls"]``; ``ClientCertificateScope`` does, per
connection (``httpserver``), from one of two places:

- the TLS listener Tessera serves itself (``tessera serve --tls-cert --tls-key
  --tls-client-ca``): the peer certificate the handshake verified against the client CA;
- a TLS-terminating proxy in front (nginx ``proxy_set_header X-SSL-Client-Cert
  $ssl_client_escaped_cert``), believed only when the connection's peer address is one of
  ``client_cert_proxies``.

The forwarding header is removed from every request whatever its origin, so the app below
never sees one it should not believe: a client cannot name a certificate by sending it.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Final
from urllib.parse import unquote

__all__ = ["DEFAULT_CLIENT_CERT_HEADER", "ClientCertificateScope", "client_certificate",
           "der_to_pem"]

DEFAULT_CLIENT_CERT_HEADER: Final = "x-ssl-client-cert"
_MAX_PEM: Final = 16 * 1024

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


def der_to_pem(der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def client_certificate(scope: Scope) -> str | None:
    """The leaf client certificate (PEM) of the request, or None."""
    extensions = scope.get("extensions") or {}
    tls = extensions.get("tls") if isinstance(extensions, dict) else None
    chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
    if isinstance(chain, list | tuple) and chain and isinstance(chain[0], str):
        return chain[0]
    return None


class ClientCertificateScope:
    """Wraps the app for one connection (or, with ``peer_cert=None``, for any)."""

    def __init__(self, app: ASGIApp, *, peer_cert: bytes | None = None,
                 trusted_proxies: Iterable[str] = (),
                 header: str = DEFAULT_CLIENT_CERT_HEADER) -> None:
        self.app = app
        self._peer_pem = der_to_pem(peer_cert) if peer_cert else None
        self._proxies = frozenset(trusted_proxies)
        self._header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope.get("type") == "http":
            scope = self._with_certificate(scope)
        await self.app(scope, receive, send)

    def _with_certificate(self, scope: Scope) -> Scope:
        headers = scope.get("headers") or []
        forwarded = [value for name, value in headers if name.lower() == self._header]
        if not forwarded and self._peer_pem is None:
            return scope  # nothing to add or strip (most requests)
        scope = dict(scope)
        if forwarded:
            scope["headers"] = [(n, v) for n, v in headers if n.lower() != self._header]
        pem = self._peer_pem
        if pem is None and len(forwarded) == 1 and self._from_proxy(scope):
            pem = _forwarded_pem(forwarded[0])
        if pem is not None:
            extensions = dict(scope.get("extensions") or {})
            extensions["tls"] = {"client_cert_chain": [pem], "client_cert_name": None,
                                 "client_cert_error": None, "server_cert": None,
                                 "tls_version": None, "cipher_suite": None}
            scope["extensions"] = extensions
        return scope

    def _from_proxy(self, scope: Scope) -> bool:
        client = scope.get("client")
        return client is not None and str(client[0]) in self._proxies


def _forwarded_pem(raw: bytes) -> str | None:
    """nginx ``$ssl_client_escaped_cert``: the PEM, URL-encoded; empty or ``-`` when the
    client sent none."""
    if len(raw) > _MAX_PEM:
        return None
    text = unquote(raw.decode("latin-1")).strip()
    if not text.startswith("-----BEGIN CERTIFICATE-----"):
        return None
    return text + "\n"
