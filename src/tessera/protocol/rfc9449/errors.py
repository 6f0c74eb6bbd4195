"""DPoP errors, framework-free: the token endpoint, the userinfo endpoint, the verifier SDK
and the gateway map them to their own answers.

    DPoPError                    reason (stable, for logs and metrics), description (safe)
    ├── InvalidProof             the proof fails a check of RFC 9449 §4.3 → invalid_dpop_proof
    │   └── ProofReplayed        its jti was seen within the window (§11.1)
    ├── UseNonce                 a server nonce is required (§8, §9) → use_dpop_nonce;
    │                            carries the nonce to send in ``DPoP-Nonce``
    ├── BindingMismatch          the token's ``cnf.jkt`` and the presentation disagree
    │                            (bound token sent as Bearer, wrong key, unbound token
    │                            sent as DPoP) → invalid_token (§7.1, §7.2)
    └── ReplayCacheUnavailable   the replay cache cannot answer: fail closed (503)
"""

from __future__ import annotations

__all__ = ["BindingMismatch", "DPoPError", "InvalidProof", "ProofReplayed",
           "ReplayCacheUnavailable", "UseNonce"]


class DPoPError(Exception):
    """Base of every DPoP refusal; ``reason`` is a stable machine-readable string."""

    description = "The DPoP proof is invalid."

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        """Why, for the log; never sent."""


class InvalidProof(DPoPError):
    """RFC 9449 §4.3: the ``DPoP`` header is not an acceptable proof for this request."""


class ProofReplayed(InvalidProof):
    """RFC 9449 §11.1: a proof's ``jti`` was already used within the acceptance window."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("replayed", detail)


class UseNonce(DPoPError):
    """RFC 9449 §8/§9: the server requires its nonce (missing, unknown or expired)."""

    description = "Authorization server requires nonce in DPoP proof."

    def __init__(self, nonce: str, detail: str = "") -> None:
        super().__init__("use_dpop_nonce", detail)
        self.nonce = nonce
        """The fresh nonce the client must use (``DPoP-Nonce`` response header)."""


class BindingMismatch(DPoPError):
    """The access token's binding does not fit how it was presented (§7.1, §7.2)."""

    description = "The access token is not bound to the presented key."


class ReplayCacheUnavailable(DPoPError):
    """The replay cache could not record the proof; the proof is refused (fail closed)."""

    description = "The DPoP proof cannot be checked right now; try again later."

    def __init__(self, detail: str = "") -> None:
        super().__init__("replay_cache_unavailable", detail)
