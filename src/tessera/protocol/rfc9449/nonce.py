"""Server-provided nonces — RFC 9449 §8 (authorization server) and §9 (resource server).

Stateless: a nonce is a time step and an HMAC of it under a server key, so every worker
sharing the key accepts every other's nonces without shared storage. A nonce is accepted
during its own step and the next one: between ``lifetime`` and ``2 × lifetime`` seconds
after it was first handed out. Clients learn a fresh one from the ``DPoP-Nonce`` header
of any DPoP response and from ``use_dpop_nonce`` refusals.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

from tessera.protocol.rfc9449.errors import UseNonce
from tessera.protocol.rfc9449.proof import DPoPProof

__all__ = ["NonceIssuer", "check_nonce"]

_LABEL: Final = b"tessera/dpop-nonce/v1\x00"
_MAC_BYTES: Final = 16


class NonceIssuer:
    """Issues and checks nonces; ``key`` is at least 32 random bytes shared by the
    servers that must accept each other's nonces."""

    def __init__(self, key: bytes, *, lifetime: float = 300.0) -> None:
        if len(key) < 32:
            raise ValueError("the nonce key must be at least 32 bytes")
        if lifetime <= 0:
            raise ValueError("the nonce lifetime must be positive")
        self._key = key
        self.lifetime = lifetime

    def issue(self, now: float) -> str:
        return self._nonce(int(now // self.lifetime))

    def is_valid(self, nonce: str, now: float) -> bool:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return False
        if len(raw) != 8 + _MAC_BYTES:
            return False
        step = int.from_bytes(raw[:8], "big")
        current = int(now // self.lifetime)
        return step in (current, current - 1) and hmac.compare_digest(
            self._nonce(step), nonce)

    def _nonce(self, step: int) -> str:
        counter = step.to_bytes(8, "big")
        mac = hmac.new(self._key, _LABEL + counter, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(counter + mac).rstrip(b"=").decode("ascii")


def check_nonce(proof: DPoPProof, nonces: NonceIssuer | None, *, now: float,
                required: bool) -> None:
    """§4.3 check 10: when the server demands a nonce (``required``), or the client sent
    one, it must be a current one of ours; otherwise ``UseNonce`` with a fresh one."""
    if nonces is None:
        if required:
            raise ValueError("a nonce is required but no NonceIssuer is configured")
        return
    if proof.nonce is None:
        if required:
            raise UseNonce(nonces.issue(now), "no nonce in the proof")
        return
    if not nonces.is_valid(proof.nonce, now):
        raise UseNonce(nonces.issue(now), "unknown or expired nonce")
