"""OAuth 2.0 Demonstrating Proof of Possession (DPoP) — RFC 9449,
https://www.rfc-editor.org/rfc/rfc9449

Framework- and storage-free, so the identity service, the verifier SDK and the gateway
share it: ``check_proof`` (the stateless checks of §4.3), ``NonceIssuer`` (server nonces,
§8/§9), ``ReplayCache`` and ``MemoryReplayCache`` (jti replay, §11.1), ``ProofChecker``
(all of them in order, plus the resource-server binding rule of §7) and the RFC 7638
thumbprint ``jwk_thumbprint`` that becomes ``cnf.jkt`` (§6); ``ProofSigner`` is the
client half (§4.2), for the backend-for-frontend.
"""

from tessera.protocol.rfc9449.checker import BEARER, DPOP, ProofChecker, challenge
from tessera.protocol.rfc9449.errors import (
    BindingMismatch,
    DPoPError,
    InvalidProof,
    ProofReplayed,
    ReplayCacheUnavailable,
    UseNonce,
)
from tessera.protocol.rfc9449.htu import normalize_htu
from tessera.protocol.rfc9449.nonce import NonceIssuer, check_nonce
from tessera.protocol.rfc9449.proof import (
    DEFAULT_WINDOW,
    DPOP_TYP,
    MAX_PROOF_LENGTH,
    SUPPORTED_ALGS,
    DPoPProof,
    access_token_hash,
    check_proof,
    jwk_thumbprint,
)
from tessera.protocol.rfc9449.replay import MemoryReplayCache, ReplayCache, replay_key
from tessera.protocol.rfc9449.signer import ProofSigner

__all__ = [
    "BEARER",
    "DEFAULT_WINDOW",
    "DPOP",
    "DPOP_TYP",
    "MAX_PROOF_LENGTH",
    "SUPPORTED_ALGS",
    "BindingMismatch",
    "DPoPError",
    "DPoPProof",
    "InvalidProof",
    "MemoryReplayCache",
    "NonceIssuer",
    "ProofChecker",
    "ProofReplayed",
    "ProofSigner",
    "ReplayCache",
    "ReplayCacheUnavailable",
    "UseNonce",
    "access_token_hash",
    "challenge",
    "check_nonce",
    "check_proof",
    "jwk_thumbprint",
    "normalize_htu",
    "replay_key",
]
