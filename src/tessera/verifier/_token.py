"""The verified access token: typed RFC 9068 §2.2 claims plus Tessera's ``sid``/``sv``/``tid``
(defined once, in ``tessera.protocol.rfc9068.token``, for the SDK and the identity service)."""

from __future__ import annotations

from tessera.protocol.rfc9068 import token as _shared
from tessera.protocol.rfc9068.token import TokenRejected, VerifiedToken
from tessera.verifier.errors import Denied

__all__ = ["VerifiedToken", "parse_claims"]


def parse_claims(claims: object, *, kid: str, alg: str) -> VerifiedToken:
    """``protocol.rfc9068.token.parse_claims``, raising the SDK's ``Denied(malformed)``."""
    try:
        return _shared.parse_claims(claims, kid=kid, alg=alg)
    except TokenRejected as exc:
        raise Denied.of(exc) from None
