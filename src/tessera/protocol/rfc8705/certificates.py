"""Certificates presented over mutual TLS (RFC 8705 §2 and §3.1), via ``cryptography``."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tessera import jose

__all__ = ["MTLS_AUTH_METHODS", "CertificateError", "certificate_thumbprint",
           "load_certificate", "public_key_registered", "subject_matches"]

MTLS_AUTH_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")


class CertificateError(ValueError):
    """The presented certificate cannot be read."""


def load_certificate(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise CertificateError(f"unreadable client certificate: {exc}") from None


def certificate_thumbprint(certificate: x509.Certificate) -> str:
    """§3.1 ``x5t#S256``: base64url (no padding) SHA-256 of the DER certificate."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def subject_matches(certificate: x509.Certificate, expected_dn: str) -> bool:
    """§2.1.2: the subject DN equals the registered one (RFC 4514 string), compared as
    parsed names so spacing and attribute-name spelling do not matter."""
    try:
        expected = x509.Name.from_rfc4514_string(expected_dn)
    except ValueError:
        return False
    return certificate.subject == expected


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo))


def public_key_registered(certificate: x509.Certificate, jwks: str) -> bool:
    """§2.2: the certificate's public key is one of the client's registered keys."""
    try:
        document = json.loads(jwks)
    except ValueError:
        return False
    presented = _spki(certificate.public_key())
    keys = document.get("keys") if isinstance(document, dict) else None
    for entry in keys if isinstance(keys, list) else []:
        if not isinstance(entry, dict):
            continue
        try:
            candidate = _spki(jose.load_jwk(entry))
        except (jose.JoseError, AttributeError):
            continue
        if candidate == presented:
            return True
    return False
