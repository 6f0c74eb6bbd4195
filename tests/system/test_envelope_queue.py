"""Identity envelopes over a real queue: Redis Streams with one consumer group per policy.

A publisher service verifies a user's access token from the live identity service and
XADDs messages with an envelope; two consumers (``reject_revoked`` and
``authorized_at_emission``) each follow the identity service's revocation feed with their
own ``RevocationState`` + ``RevocationHistory`` and XREADGROUP / verify / XACK. The
session is revoked through the admin API while a message waits in the stream, and the
publisher (whose request was verified before the revocation) emits once more after it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from tessera.application import admin
from tessera.core.clock import FixedClock
from tessera.verifier import (
    Denied,
    KeySet,
    VerificationPolicy,
    VerifiedToken,
    verify_access_token,
)
from tessera.verifier.envelope import (
    EnvelopeDenied,
    EnvelopePolicy,
    EnvelopeSigner,
    EnvelopeVerifier,
    RevocationPolicy,
)
from tessera.verifier.revocation import RevocationFollower, RevocationHistory, RevocationState
from tessera.verifier.revocation.sources import HttpFeedSource
from tests.conftest import ISSUER, REDIS_URL, require_service
from tests.polling import eventually
from tests.system.conftest import LiveService

pytestmark = pytest.mark.redis

QUEUE = "orders.created"
API = "https://api.example"


@dataclass
class Worker:
    """One consumer group: its own revocation state, history, follower and verifier."""

    group: str
    state: RevocationState
    history: RevocationHistory
    follower: RevocationFollower
    verifier: EnvelopeVerifier


@dataclass
class Outcome:
    decision: str
    reason: str
    basis: str | None
    duplicate: bool = False


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(require_service(REDIS_URL, "redis"))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def stream(redis: Redis) -> AsyncIterator[str]:
    name = f"tessera:test:envelopes:{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        await redis.delete(name)


async def start_worker(live: LiveService, clock: FixedClock, revocation: RevocationPolicy,
                       publisher_jwks: dict[str, Any]) -> Worker:
    feed = await live.feed_client()
    assert feed.secret
    state, history = RevocationState(), RevocationHistory()
    source = HttpFeedSource(live.url, client_id=feed.client_id, client_secret=feed.secret,
                            heartbeat_timeout=2.0)
    follower = RevocationFollower(state, history.recording(source, clock=clock), clock=clock)
    follower.start()
    await asyncio.wait_for(follower.synced(), 5)
    verifier = EnvelopeVerifier(
        EnvelopePolicy(QUEUE, revocation=revocation, max_staleness=60),
        publishers={"checkout": publisher_jwks}, revocation_state=state, history=history,
        clock=clock, service=f"worker-{revocation.value}")
    return Worker(revocation.value, state, history, follower, verifier)


async def consume(redis: Redis, stream: str, worker: Worker, *, pending: bool = False,
                  ack: bool = True) -> dict[str, Outcome]:
    """Read what the group has for us (new, or our un-acknowledged ones), verify each
    message's envelope against its body, acknowledge; outcomes by request id."""
    reply = await redis.xreadgroup(worker.group, "worker-1", {stream: "0" if pending else ">"},
                                   count=10, block=2000)
    outcomes: dict[str, Outcome] = {}
    for _, entries in reply:
        for message_id, fields in entries:
            envelope, body = fields[b"envelope"].decode(), fields[b"body"]
            try:
                result = worker.verifier.verify(envelope, body)
                outcomes[result.req] = Outcome("allowed", result.revoked or "valid",
                                               result.basis.value, result.duplicate)
            except EnvelopeDenied as denied:
                assert not denied.retryable
                assert denied.envelope is not None
                key = denied.envelope.req if denied.label != "body_mismatch" else "moved"
                outcomes[key] = Outcome("denied", denied.label,
                                        denied.basis.value if denied.basis else None)
            if ack:
                await redis.xack(stream, worker.group, message_id)
    return outcomes


def revoked_in(state: RevocationState, token: VerifiedToken) -> bool:
    try:
        state.check(token)
    except Denied:
        return True
    return False


async def test_envelopes_over_redis_streams_under_both_policies(
        live: LiveService, clock: FixedClock, redis: Redis, stream: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tessera.audit")
    # A user logs in; the checkout service verifies their token on an API request.
    app = await live.driver.web_client()
    await live.driver.user("ada")
    access_token = (await live.driver.login_tokens(app, username="ada"))["access_token"]
    keys = KeySet.from_jwks((await live.http.get("/jwks")).json())
    token = verify_access_token(access_token, keys=keys,
                                policy=VerificationPolicy(issuer=ISSUER, audience=API),
                                revocation_state=RevocationState(), now=clock.now())
    assert token.sid is not None
    checkout = EnvelopeSigner.generate("checkout", clock=clock)

    async def publish(request_id: str, body: bytes) -> None:
        envelope = checkout.sign(token, body=body, audience=QUEUE, request_id=request_id)
        assert access_token not in envelope
        await redis.xadd(stream, {"body": body, "envelope": envelope})

    for group in ("reject_revoked", "authorized_at_emission"):
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    reject = await start_worker(live, clock, RevocationPolicy.REJECT_REVOKED, checkout.jwks())
    emission = await start_worker(live, clock, RevocationPolicy.AUTHORIZED_AT_EMISSION,
                                  checkout.jwks())
    try:
        # 1. Processed right away: both accept. A crash before XACK → redelivery, flagged.
        await publish("req-1", b'{"order": 1}')
        for worker in (reject, emission):
            first = await consume(redis, stream, worker, ack=False)
            assert first == {"req-1": Outcome("allowed", "valid", "processing_time")}
            again = await consume(redis, stream, worker, pending=True)
            assert again == {"req-1": Outcome("allowed", "valid", "processing_time", True)}

        # 2. Queued while the user is still signed in ...
        clock.advance(1)
        await publish("req-2", b'{"order": 2}')
        # 3. ... then the session is revoked, and both consumers hear of it on the feed.
        clock.advance(1)
        assert await admin.revoke(live.identity.admin, sid=token.sid, reason="logout",
                                  actor="test") == 1
        await eventually(lambda: all(revoked_in(w.state, token) for w in (reject, emission)))
        # 4. The checkout request verified before the revocation emits once more.
        clock.advance(1)
        await publish("req-3", b'{"order": 3}')
        # 5. Someone moves req-1's envelope onto another body.
        moved = (await redis.xrange(stream, count=1))[0][1][b"envelope"]
        await redis.xadd(stream, {"body": b'{"order": 999}', "envelope": moved})

        clock.advance(1)
        assert await consume(redis, stream, reject) == {
            "req-2": Outcome("denied", "session_revoked", "processing_time"),
            "req-3": Outcome("denied", "session_revoked", "processing_time"),
            "moved": Outcome("denied", "body_mismatch", None),
        }
        assert await consume(redis, stream, emission) == {
            "req-2": Outcome("allowed", "session_revoked", "emission_time"),
            "req-3": Outcome("denied", "session_revoked", "emission_time"),
            "moved": Outcome("denied", "body_mismatch", None),
        }
        for worker in (reject, emission):
            pending = await redis.xpending(stream, worker.group)
            assert pending["pending"] == 0
    finally:
        for worker in (reject, emission):
            await worker.follower.aclose()

    events = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tessera.audit"]
    req2 = {e["service"]: e for e in events if e.get("correlation_id") == "req-2"}
    assert req2["worker-authorized_at_emission"] | {"latency_us": 0} == {
        "event": "access.allowed", "decision": "allowed", "reason": "valid", "status": 200,
        "at": clock.now(), "service": "worker-authorized_at_emission", "route": QUEUE,
        "policy": "authorized_at_emission", "basis": "emission_time",
        "revoked": "session_revoked", "user_id": token.sub, "tenant_id": token.tid,
        "client_id": token.client_id, "publisher": "checkout", "correlation_id": "req-2",
        "jti": req2["worker-authorized_at_emission"]["jti"], "emitted_at": clock.now() - 3,
        "sid_hash": req2["worker-authorized_at_emission"]["sid_hash"], "latency_us": 0}
    assert req2["worker-reject_revoked"]["event"] == "access.denied"
    assert req2["worker-reject_revoked"]["basis"] == "processing_time"
    assert all(access_token not in json.dumps(e) for e in events)
