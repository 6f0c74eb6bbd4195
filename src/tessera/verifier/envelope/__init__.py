"""Identity envelopes: who asked, for which tenant and session, carried with a queued
message and checked by the consumer (docs/envelopes.md).

``claims``      EnvelopeClaims, EnvelopeSigner (the producer), EnvelopePolicy and the
                consumer's RevocationPolicy
``verify``      verify_envelope: the pure check (signature, body binding, lifetime, revocation)
``consumer``    EnvelopeVerifier: the consumer's driver (replay, decision log)
``seen_redis``  RedisSeenEnvelopes: replay detection shared by consumer replicas
"""

from __future__ import annotations

from tessera.verifier.envelope.claims import (
    ENVELOPE_TYP,
    MAX_ENVELOPE_TTL,
    DecisionBasis,
    EnvelopeClaims,
    EnvelopeDenied,
    EnvelopePolicy,
    EnvelopeSigner,
    RevocationPolicy,
    VerifiedEnvelope,
)
from tessera.verifier.envelope.consumer import EnvelopeVerifier
from tessera.verifier.envelope.seen_redis import RedisSeenEnvelopes
from tessera.verifier.envelope.verify import PublisherKeys, verify_envelope

__all__ = [
    "ENVELOPE_TYP",
    "MAX_ENVELOPE_TTL",
    "DecisionBasis",
    "EnvelopeClaims",
    "EnvelopeDenied",
    "EnvelopePolicy",
    "EnvelopeSigner",
    "EnvelopeVerifier",
    "PublisherKeys",
    "RedisSeenEnvelopes",
    "RevocationPolicy",
    "VerifiedEnvelope",
    "verify_envelope",
]
