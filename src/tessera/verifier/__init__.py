"""Tessera Verifier SDK — verify RFC 9068 JWT access tokens locally and know revocations.

RFC 9068 (JWT Profile for OAuth 2.0 Access Tokens): https://www.rfc-editor.org/rfc/rfc9068

This package is the pure core: ``verify_access_token(token, keys=..., policy=...,
revocation_state=..., now=...)`` returns a ``VerifiedToken`` or raises ``Denied`` with a
machine-readable ``Reason`` (every error is in ``tessera.verifier.errors``, one tree).
Everything else is imported by path, one module per job::

    tessera.verifier.service      VerifierService: wiring (JWKS, revocation following, the
                                  freshness rule, decision log, metrics); check / attempt
    tessera.verifier.settings     VerifierSettings (pydantic-settings, TESSERA_VERIFIER_*)
    tessera.verifier.asgi         VerifierMiddleware + RouteRule (any ASGI app)
    tessera.verifier.fastapi      require_token / require_scopes / require_acr / ... , install
    tessera.verifier.dpop         DPoPBinding, Presentation (RFC 9449 §7)
    tessera.verifier.replay       RedisReplayCache (DPoP jti replay shared by replicas)
    tessera.verifier.jwks         JwksCache
    tessera.verifier.driver       Verifier: verify with a JwksCache, the local revocation
                                  state and (for reference tokens) introspection
    tessera.verifier.metrics      VerifierMetrics, metrics_app
    tessera.verifier.decisions    Decision, DecisionLog
    tessera.verifier.revocation   RevocationState, RevocationHistory, RevocationFollower,
                                  event sources (HTTP feed, Redis stream, in-process bus)
    tessera.verifier.envelope     identity envelopes for queues: EnvelopeSigner,
                                  EnvelopeVerifier, verify_envelope, RedisSeenEnvelopes

The public API of every module above is pinned by ``tests/unit/verifier/test_public_api.py``.
"""

from __future__ import annotations

from tessera.protocol.rfc9068.cache import VerifiedTokenCache
from tessera.verifier._keyset import ALLOWED_ALGS, KeySet, VerificationKey
from tessera.verifier._policy import MAX_LEEWAY, VerificationPolicy
from tessera.verifier._token import VerifiedToken
from tessera.verifier._verify import ACCEPTED_TYPS, MAX_TOKEN_LENGTH, verify_access_token
from tessera.verifier.errors import (
    Denied,
    InvalidEvent,
    InvalidJwks,
    KeysUnavailable,
    Reason,
    StepUpRequired,
    VerifierError,
)

__all__ = [
    "ACCEPTED_TYPS",
    "ALLOWED_ALGS",
    "MAX_LEEWAY",
    "MAX_TOKEN_LENGTH",
    "Denied",
    "InvalidEvent",
    "InvalidJwks",
    "KeySet",
    "KeysUnavailable",
    "Reason",
    "StepUpRequired",
    "VerificationKey",
    "VerificationPolicy",
    "VerifiedToken",
    "VerifiedTokenCache",
    "VerifierError",
    "verify_access_token",
]
