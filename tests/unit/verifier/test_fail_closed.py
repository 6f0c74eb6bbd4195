"""The two ways a verifier used to fail open (issue 10), each reproduced at the SDK level:

- it started while the identity service could not give it a snapshot, waited
  ``startup_wait`` and then served every ordinary route from an *empty* revocation state;
- it followed a Redis stream that had come back empty with no relay running, took the
  empty reads for heartbeats and called itself fresh, so even strict routes accepted.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from prometheus_client import CollectorRegistry

from tessera.bus.redis_streams import RedisStreamsBus
from tessera.core.clock import SystemClock
from tessera.verifier import Denied, Reason
from tessera.verifier.revocation import RevocationFollower, RevocationState
from tessera.verifier.revocation.sources import BusSource
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings
from tests.conftest import REDIS_URL, require_service

from ._support import AUDIENCE, ISSUER, Minter


def _identity_without_snapshot(minter: Minter) -> httpx.MockTransport:
    """JWKS works; the snapshot and the feed answer 503 (the database is restarting)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":
            return httpx.Response(200, json=minter.jwks())
        return httpx.Response(503, json={"error": "temporarily_unavailable"})

    return httpx.MockTransport(answer)


async def test_a_verifier_that_never_loaded_a_snapshot_refuses_every_route(
        minter: Minter) -> None:
    settings = VerifierSettings(issuer=ISSUER, audience=AUDIENCE, client_id="svc",
                                client_secret="s", startup_wait=0.2)
    service = VerifierService(settings, transport=_identity_without_snapshot(minter),
                              registry=CollectorRegistry())
    now = int(time.time())
    token = minter.mint(iat=now, nbf=now, exp=now + 300)
    async with service:
        for strict in (False, True):
            with pytest.raises(Denied) as denied:
                await service.check(token, strict=strict)
            assert denied.value.reason is Reason.STALE_STATE
            assert denied.value.status == 503


@pytest.mark.redis
async def test_an_empty_stream_without_a_relay_is_not_freshness() -> None:
    """Nothing writes to the stream (Redis came back empty, the identity service is
    down): reads return nothing, which proves nothing."""
    url = require_service(REDIS_URL, "redis")
    stream = f"tessera:test:{uuid.uuid4().hex}"
    bus = RedisStreamsBus.from_url(url, stream=stream)

    async def snapshot() -> dict[str, object]:
        return {"seq": 0, "events": []}

    state = RevocationState()
    follower = RevocationFollower(state, BusSource(bus, snapshot=snapshot, heartbeat=0.05),
                                  clock=SystemClock())
    follower.start()
    try:
        await asyncio.sleep(1.0)
        assert state.is_stale(time.time(), 0.5), f"lag {state.lag(time.time()):.2f}s"
    finally:
        await follower.aclose()
        await bus.aclose()
