"""Access-token claims for tests, in one place: the claim set Tessera issues (RFC 9068
§2.2 plus ``sid``, ``sv``, ``tid``, ``acr``, ``amr``, ``auth_time``), changing one claim
of it, and reading the claims of a token without verifying it.

Light on purpose (PyJWT only), so the SDK's tests can use it without loading the
identity service.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, Final

import jwt

__all__ = ["DROP", "access_token_claims", "changed", "claims_of"]

DROP: Final = object()
"""An override value that removes the claim (``None`` is a value some tests need)."""

_jti = itertools.count(1)


def changed(values: Mapping[str, Any], changes: Mapping[str, Any], *,
            drop: object = DROP) -> dict[str, Any]:
    """``values`` with ``changes`` applied; a change whose value is ``drop`` removes the
    name."""
    result = dict(values)
    for name, value in changes.items():
        if value is drop:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def access_token_claims(*, issuer: str, audience: str | list[str], now: float,
                        **overrides: Any) -> dict[str, Any]:
    """A valid access token's claims as the identity service issues them, issued at
    ``now`` for 5 minutes, with ``overrides`` applied (``DROP`` removes a claim). Each
    call has a fresh ``jti``."""
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": issuer, "sub": "user-1",
        "aud": [audience] if isinstance(audience, str) else list(audience),
        "exp": issued + 300, "iat": issued, "nbf": issued, "jti": f"jti-{next(_jti)}",
        "client_id": "client-1", "scope": "orders:read orders:write", "sid": "sid-1",
        "sv": 1, "tid": "tenant-1", "acr": "urn:tessera:acr:pwd", "amr": ["pwd"],
        "auth_time": issued - 60,
    }
    return changed(claims, overrides)


def claims_of(token: str) -> dict[str, Any]:
    """The claims of a JWT without verifying it (the code under test verifies; a test
    only reads what was issued)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
