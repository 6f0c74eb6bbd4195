"""Signing keys: the key ring (next → active → retiring → retired), JWKS, sealing at rest.

``_jose`` is the only module that touches raw key objects; everything else uses
``KeyRing.sign`` / ``KeyRing.verify`` with no algorithm choice at the call site.
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
