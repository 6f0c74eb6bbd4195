"""Signing keys: the key ring (next → active → retiring → retired), JWKS, sealing at rest.

JOSE itself is ``tessera.jose``'s; everything else uses ``KeyRing.sign`` /
``KeyRing.verify`` (ID and logout tokens) and ``KeyRing.verification_keys`` (access tokens,
through ``protocol.rfc9068.validator``) with no algorithm choice at the call site.
"""

from tessera.keys.errors import KeyError_, TokenInvalid
from tessera.keys.ring import (
    KeyRing,
    KeyState,
    RingHolder,
    SigningKey,
    load_signing_key,
    new_signing_key,
    plan_rotation,
)
from tessera.keys.sealing import Sealer

__all__ = [
    "SUPPORTED_ALGS",
    "KeyError_",
    "KeyRing",
    "KeyState",
    "RingHolder",
    "Sealer",
    "SigningKey",
    "TokenInvalid",
    "load_signing_key",
    "new_signing_key",
    "plan_rotation",
]

SUPPORTED_ALGS = ("RS256", "ES256", "EdDSA")
