"""``ProofChecker``: the whole acceptance of a DPoP proof, stateless checks then state —
``check_proof`` (RFC 9449 §4.3) → ``check_nonce`` (§8, §9) → replay cache (§11.1) — and,
for resource servers, the binding of the presented token to the proof's key (§7).

Used by the token endpoint, the userinfo endpoint, the verifier SDK and the gateway, so
every part of Tessera accepts exactly the same proofs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from tessera.core.clock import Clock
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.protocol.rfc9068.validator import check_dpop_binding
from tessera.protocol.rfc9449.errors import BindingMismatch, InvalidProof, ProofReplayed
from tessera.protocol.rfc9449.nonce import NonceIssuer, check_nonce
from tessera.protocol.rfc9449.proof import (
    DEFAULT_WINDOW,
    SUPPORTED_ALGS,
    DPoPProof,
    check_proof,
)
from tessera.protocol.rfc9449.replay import ReplayCache, replay_key

__all__ = ["BEARER", "DPOP", "ProofChecker", "challenge"]

BEARER: Final = "bearer"
DPOP: Final = "dpop"
"""Authorization schemes (lower case) as ``check_presentation`` takes them."""
_UNSAFE: Final = re.compile(r'["\\\x00-\x1f\x7f]')


def challenge(algs: Iterable[str], error: str | None = None,
              description: str | None = None) -> str:
    """An RFC 9449 §7.1 ``WWW-Authenticate: DPoP`` challenge (``algs`` always listed)."""
    parts = [f'error="{error}"'] if error else []
    if description:
        parts.append(f'error_description="{_UNSAFE.sub("", description)}"')
    parts.append(f'algs="{" ".join(algs)}"')
    return "DPoP " + ", ".join(parts)


class ProofChecker:
    """Accepts proofs for one server. ``replay`` should be shared by every process that
    serves the same URLs (``RedisReplayCache``); ``nonces`` enables server nonces, which
    ``require_nonce`` makes mandatory."""

    def __init__(self, replay: ReplayCache, clock: Clock, *,
                 algorithms: Sequence[str] = SUPPORTED_ALGS,
                 window: float = DEFAULT_WINDOW, nonces: NonceIssuer | None = None,
                 require_nonce: bool = False) -> None:
        unknown = set(algorithms) - set(SUPPORTED_ALGS)
        if unknown or not algorithms:
            raise ValueError(f"DPoP algorithms must be among {', '.join(SUPPORTED_ALGS)}")
        if require_nonce and nonces is None:
            raise ValueError("require_nonce needs a NonceIssuer")
        if not 0 < window <= 300:
            raise ValueError("the proof window must be within (0, 300] seconds")
        self.replay = replay
        self.clock = clock
        self.algorithms = tuple(algorithms)
        self.window = window
        self.nonces = nonces
        self.require_nonce = require_nonce

    @property
    def algs(self) -> str:
        """The ``algs`` challenge parameter: space-separated allowed algorithms."""
        return " ".join(self.algorithms)

    def fresh_nonce(self) -> str | None:
        """A nonce to hand out (``DPoP-Nonce``), if nonces are enabled."""
        return self.nonces.issue(self.clock.now()) if self.nonces is not None else None

    async def check(self, proofs: Sequence[str], *, method: str, url: str,
                    access_token: str | None = None) -> DPoPProof:
        """The proof of one request (``proofs``: every ``DPoP`` header value received).
        Raises ``InvalidProof`` (``ProofReplayed``), ``UseNonce`` or
        ``ReplayCacheUnavailable``."""
        if len(proofs) != 1:
            raise InvalidProof("malformed", f"{len(proofs)} DPoP headers, exactly one needed")
        now = self.clock.now()
        proof = check_proof(proofs[0], method=method, url=url, now=now,
                            algorithms=self.algorithms, window=self.window,
                            access_token=access_token)
        check_nonce(proof, self.nonces, now=now, required=self.require_nonce)
        ttl = max(1.0, proof.iat + self.window - now + 1.0)
        if not await self.replay.first_use(replay_key(proof), ttl=ttl, now=now):
            raise ProofReplayed(f"jti seen within the last {self.window:.0f}s")
        return proof

    async def check_presentation(self, *, scheme: str, token: str, bound_jkt: str | None,
                                 proofs: Sequence[str], method: str,
                                 url: str) -> DPoPProof | None:
        """A resource server's rule (§7.1, §7.2) for a token presented with ``scheme``
        (``bearer`` or ``dpop``) whose ``cnf.jkt`` is ``bound_jkt``:

        - Bearer: the token must not be DPoP-bound (any DPoP header is ignored);
        - DPoP: the token must be bound, the proof valid for this request with ``ath``
          of the token, and signed by the bound key.

        Returns the proof (DPoP) or None (Bearer); raises ``BindingMismatch`` or what
        ``check`` raises."""
        if scheme == BEARER:
            _bind(bound_jkt, None, "bound_token_as_bearer")
            return None
        if scheme != DPOP:
            raise ValueError(f"unknown scheme {scheme!r}")
        if bound_jkt is None:  # refused whatever the proof: a proof does not bind a token
            _bind(None, DPOP, "unbound_token_as_dpop")
        proof = await self.check(proofs, method=method, url=url, access_token=token)
        _bind(bound_jkt, proof.jkt, "wrong_key")
        return proof


def _bind(bound_jkt: str | None, jkt: str | None, reason: str) -> None:
    """The binding rule of every side (``validator.check_dpop_binding``), as this
    module's ``BindingMismatch``."""
    try:
        check_dpop_binding(bound_jkt, jkt)
    except TokenRejected as exc:
        raise BindingMismatch(reason, exc.detail) from None
