"""Certificate-bound access tokens at the resource server (RFC 8705 §3).

RFC 8705: https://www.rfc-editor.org/rfc/rfc8705

A token whose ``cnf`` holds ``x5t#S256`` is accepted only on a request that presents the
certificate with that SHA-256 thumbprint (compared in constant time). The certificate is
the one the ASGI TLS extension names (``tessera.tls_scope``): from the service's own TLS
listener, or forwarded by a trusted TLS-terminating proxy (nginx
``$ssl_client_escaped_cert``). A token without ``x5t#S256`` is not affected.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tessera.protocol.rfc9068 import validator
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.protocol.rfc9068.validator import certificate_binding
from tessera.verifier._token import VerifiedToken
from tessera.verifier.errors import Denied

__all__ = ["bound_thumbprint", "certificate_thumbprint", "check_certificate_binding"]


def bound_thumbprint(token: VerifiedToken) -> str | None:
    return certificate_binding(token)[1]


@lru_cache(maxsize=256)
def certificate_thumbprint(pem: str) -> str | None:
    """``x5t#S256`` of a PEM certificate (memoised: a connection presents one), or None
    when it cannot be read."""
    try:
        der = x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(
            serialization.Encoding.DER)
    except (ValueError, UnicodeEncodeError):
        return None
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def check_certificate_binding(token: VerifiedToken, client_cert: str | None) -> None:
    """Raise ``Denied(certificate_binding)`` when ``token`` is bound to a certificate the
    request did not present (the shared rule, ``validator.check_certificate_binding``)."""
    if not certificate_binding(token)[0]:
        return
    try:
        validator.check_certificate_binding(
            token, certificate_thumbprint(client_cert) if client_cert else None)
    except TokenRejected as exc:
        raise Denied.of(exc) from None
