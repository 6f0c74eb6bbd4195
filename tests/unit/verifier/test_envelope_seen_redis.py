"""Envelope de-duplication shared by a consumer's replicas through Redis
(``RedisSeenEnvelopes``): a redelivery to *another* replica is recognised, a jti seen with
another body is refused, and Redis being unreachable denies (retryably), never accepts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tessera.verifier.envelope import (
    EnvelopeDenied,
    EnvelopePolicy,
    EnvelopeVerifier,
    RedisSeenEnvelopes,
)
from tests.conftest import REDIS_URL, require_service

from ._support import Minter
from .test_envelope import BODY, PUBLISHER, QUEUE, Rig


@pytest.fixture
def shared() -> Iterator[RedisSeenEnvelopes]:
    url = require_service(REDIS_URL, "redis")
    store = RedisSeenEnvelopes.from_url(url, prefix=f"tessera:test:env:{uuid.uuid4().hex}:")
    yield store
    store.close()


def replica(rig: Rig, seen: RedisSeenEnvelopes, **policy: bool) -> EnvelopeVerifier:
    return EnvelopeVerifier(EnvelopePolicy(QUEUE, **policy),
                            publishers={PUBLISHER: rig.signer.jwks()},
                            revocation_state=rig.state, clock=rig.clock, seen=seen)


def test_a_redelivery_to_another_replica_is_a_duplicate(minter: Minter,
                                                        shared: RedisSeenEnvelopes) -> None:
    rig = Rig(minter)
    envelope = rig.sign()
    first, second = replica(rig, shared), replica(rig, shared)
    assert first.verify(envelope, BODY).duplicate is False
    assert second.verify(envelope, BODY).duplicate is True
    strict = replica(rig, shared, reject_duplicates=True)
    with pytest.raises(EnvelopeDenied) as info:
        strict.verify(envelope, BODY)
    assert info.value.label == "replayed"


def test_a_jti_with_another_body_is_refused_on_any_replica(minter: Minter,
                                                           shared: RedisSeenEnvelopes) -> None:
    rig = Rig(minter)
    replica(rig, shared).verify(rig.sign(), BODY)
    other = b'{"order_id": "o-2"}'
    forged = rig.sign(body=other)  # a new jti: fine
    assert replica(rig, shared).verify(forged, other).duplicate is False
    seen_before = shared.claim((PUBLISHER, "j-1"), "h1", rig.clock.now() + 60, rig.clock.now())
    assert seen_before is None
    assert shared.claim((PUBLISHER, "j-1"), "h2", rig.clock.now() + 60,
                        rig.clock.now()) == "h1"


def test_redis_unreachable_denies_retryably(minter: Minter) -> None:
    rig = Rig(minter)
    down = RedisSeenEnvelopes.from_url("redis://127.0.0.1:1/0", timeout=0.2)
    try:
        with pytest.raises(EnvelopeDenied) as info:
            replica(rig, down).verify(rig.sign(), BODY)
    finally:
        down.close()
    assert info.value.retryable and info.value.label == "stale_state"
