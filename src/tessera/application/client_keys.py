"""Registration rules for clients that authenticate without a shared secret, and for
the access-token format (``admin.create_client``).

- ``private_key_jwt``: a JWK Set document (``--jwks-file``) or a ``jwks_uri``, exactly one.
- ``tls_client_auth`` (RFC 8705 §2.1): the subject DN of the client's certificate
  (``--tls-subject-dn``), issued by the CA the TLS listener or proxy trusts.
- ``self_signed_tls_client_auth`` (§2.2): the certificate's public key as a JWK Set
  (``--jwks-file``, ``x5c`` welcome) or ``jwks_uri``.
- ``workload_identity``: the expected ``iss`` and ``sub`` of the workload's token
  (``spiffe://…`` or ``system:serviceaccount:<ns>:<name>``) and its trust bundle / issuer
  keys, inline or by URI.

A JWK Set must hold public signing keys only (a private member is refused: it would mean
the private key left its owner) that PyJWT can load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography import x509

from tessera import jose
from tessera.core.clients import TOKEN_FORMATS
from tessera.core.urls import check_jwks_uri

__all__ = ["AUTH_METHOD_CHOICES", "ClientKeys", "check_jwks_document"]

AUTH_METHOD_CHOICES = ("client_secret_basic", "client_secret_post", "private_key_jwt",
                       "tls_client_auth", "self_signed_tls_client_auth",
                       "workload_identity", "none")
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
_WORKLOAD_SUBJECTS = ("spiffe://", "system:serviceaccount:")


class ClientKeysError(ValueError):
    pass


def check_jwks_document(text: str) -> str:
    """``text`` as a compact JWK Set of public signing keys; raises ``ValueError``."""
    try:
        document = json.loads(text)
    except ValueError:
        raise ClientKeysError("the JWK Set is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys or len(keys) > 20:
        raise ClientKeysError('a JWK Set is {"keys": [...]} with 1 to 20 keys')
    for entry in keys:
        if not isinstance(entry, dict):
            raise ClientKeysError("every key of the JWK Set is a JSON object")
        if _PRIVATE & entry.keys():
            raise ClientKeysError("the JWK Set holds a private or symmetric key: register "
                                  "public keys only")
        if entry.get("use") not in (None, "sig"):
            raise ClientKeysError("keys must be signing keys (use: sig)")
        try:
            jose.load_jwk(entry)
        except jose.JoseError as exc:
            raise ClientKeysError(f"a key of the JWK Set cannot be used: {exc.detail}") \
                from None
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class ClientKeys:
    """What ``clients create`` says about authentication and token format."""

    auth_method: str | None = None
    access_token_format: str = "jwt"
    jwks: str | None = None
    jwks_uri: str | None = None
    workload_issuer: str | None = None
    workload_subject: str | None = None
    workload_jwks: str | None = None
    workload_jwks_uri: str | None = None
    tls_subject_dn: str | None = None

    def checked(self, *, public: bool, issuer: str) -> ClientKeys:
        """The normalised settings (``auth_method`` None for a secret or a public
        client); raises ``ValueError`` with a message fit for the operator."""
        if self.access_token_format not in TOKEN_FORMATS:
            raise ClientKeysError("access token format must be jwt or reference")
        method = self.auth_method
        if method not in (None, *AUTH_METHOD_CHOICES):
            raise ClientKeysError(f"unknown auth method {method!r}")
        if method == "none" and not public:
            raise ClientKeysError("--auth-method none is for public clients (--public)")
        if method in ("client_secret_basic", "client_secret_post", "none"):
            method = None
        if public and method is not None:
            raise ClientKeysError("a public client has no credentials: drop --auth-method")
        if method not in ("private_key_jwt", "self_signed_tls_client_auth") and (
                self.jwks or self.jwks_uri):
            raise ClientKeysError("--jwks-file/--jwks-uri need --auth-method private_key_jwt "
                                  "or self_signed_tls_client_auth")
        if method != "tls_client_auth" and self.tls_subject_dn:
            raise ClientKeysError("--tls-subject-dn needs --auth-method tls_client_auth")
        if method == "tls_client_auth":
            dn = self.tls_subject_dn or ""
            try:
                x509.Name.from_rfc4514_string(dn)
            except ValueError:
                dn = ""
            if not dn:
                raise ClientKeysError("tls_client_auth needs --tls-subject-dn, an RFC 4514 "
                                      "distinguished name such as 'CN=orders,O=Example'")
            return ClientKeys(method, self.access_token_format, tls_subject_dn=dn)
        workload = (self.workload_issuer, self.workload_subject, self.workload_jwks,
                    self.workload_jwks_uri)
        if method != "workload_identity" and any(workload):
            raise ClientKeysError("--workload-* options need --auth-method workload_identity")
        if method == "self_signed_tls_client_auth" and self.jwks_uri:
            raise ClientKeysError("self_signed_tls_client_auth takes the certificate's key "
                                  "as --jwks-file")
        if method in ("private_key_jwt", "self_signed_tls_client_auth"):
            jwks, uri = self._one_key_source(self.jwks, self.jwks_uri, issuer, "")
            return ClientKeys(method, self.access_token_format, jwks=jwks, jwks_uri=uri)
        if method == "workload_identity":
            if not self.workload_issuer or not self.workload_subject:
                raise ClientKeysError("workload identity needs --workload-issuer and "
                                      "--workload-subject")
            if not self.workload_subject.startswith(_WORKLOAD_SUBJECTS):
                raise ClientKeysError("--workload-subject is a SPIFFE ID (spiffe://…) or "
                                      "system:serviceaccount:<namespace>:<name>")
            jwks, uri = self._one_key_source(self.workload_jwks, self.workload_jwks_uri,
                                             issuer, "workload-")
            return ClientKeys(method, self.access_token_format,
                              workload_issuer=self.workload_issuer,
                              workload_subject=self.workload_subject, workload_jwks=jwks,
                              workload_jwks_uri=uri)
        return ClientKeys(None, self.access_token_format)

    @staticmethod
    def _one_key_source(jwks: str | None, uri: str | None, issuer: str,
                        prefix: str) -> tuple[str | None, str | None]:
        if (jwks is None) == (uri is None):
            raise ClientKeysError(f"give exactly one of --{prefix}jwks-file and "
                                  f"--{prefix}jwks-uri")
        if uri is not None:
            problem = check_jwks_uri(uri, issuer=issuer)
            if problem is not None:
                raise ClientKeysError(problem)
            return None, uri
        assert jwks is not None
        return check_jwks_document(jwks), None
