"""OAuth 2.0 Mutual-TLS Client Authentication and Certificate-Bound Access Tokens —
RFC 8705, https://www.rfc-editor.org/rfc/rfc8705

- §2.1 ``tls_client_auth``: the client's certificate, verified by the TLS layer against
  the configured client CA, has the registered subject DN.
- §2.2 ``self_signed_tls_client_auth``: the certificate's public key is one the client
  registered (its JWK Set, ``x5c`` or the bare key).
- §3 certificate-bound access tokens: ``cnf`` carries ``x5t#S256``, the base64url SHA-256
  of the certificate's DER; a resource server accepts the token only over a connection
  presenting that certificate.
"""

from tessera.protocol.rfc8705.certificates import (
    MTLS_AUTH_METHODS,
    CertificateError,
    certificate_thumbprint,
    load_certificate,
    public_key_registered,
    subject_matches,
)

__all__ = ["MTLS_AUTH_METHODS", "CertificateError", "certificate_thumbprint",
           "load_certificate", "public_key_registered", "subject_matches"]
