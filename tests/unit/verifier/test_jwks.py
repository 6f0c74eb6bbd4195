"""JwksCache and Verifier: fetch, keep on failure, rate-limited refetch, rotation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tessera.core.clock import FixedClock
from tessera.verifier import Denied, KeysUnavailable, Reason
from tessera.verifier.driver import Verifier
from tessera.verifier.jwks import JwksCache

from ._support import ISSUER, NOW, Minter, generate, policy


class FakeIssuer:
    """Serves ``{issuer}/jwks`` from a Minter; can be told to fail."""

    def __init__(self, minter: Minter) -> None:
        self.minter = minter
        self.requests: list[httpx.Request] = []
        self.fail: str | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path != "/jwks":
            return httpx.Response(404)
        if self.fail == "500":
            return httpx.Response(500)
        if self.fail == "connect":
            raise httpx.ConnectError("down", request=request)
        if self.fail == "json":
            return httpx.Response(200, content=b"<html>")
        if self.fail == "empty":
            return httpx.Response(200, json={"keys": []})
        return httpx.Response(200, json=self.minter.jwks())


@pytest.fixture
def issuer(minter: Minter) -> FakeIssuer:
    return FakeIssuer(minter)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def jwks(issuer: FakeIssuer, clock: FixedClock) -> AsyncIterator[JwksCache]:
    cache = JwksCache(ISSUER, clock=clock, transport=httpx.MockTransport(issuer))
    yield cache
    await cache.aclose()


@pytest.fixture
def verifier(jwks: JwksCache, clock: FixedClock) -> Verifier:
    return Verifier(policy(), jwks=jwks, clock=clock)


async def test_fetches_issuer_jwks_once_and_reuses_it(
    jwks: JwksCache, issuer: FakeIssuer, clock: FixedClock
) -> None:
    assert jwks.keys is None
    keys = await jwks.get()
    assert keys.kids == {"rs-1", "es-1", "ed-1"}
    assert str(issuer.requests[0].url) == f"{ISSUER}/jwks"
    clock.advance(299)
    assert await jwks.get() is keys
    assert len(issuer.requests) == 1
    clock.advance(1)
    assert (await jwks.get()).kids == keys.kids
    assert len(issuer.requests) == 2 and jwks.fetches == 2


@pytest.mark.parametrize("failure", ["500", "connect", "json", "empty"])
async def test_no_keys_at_all_is_unavailable(
    jwks: JwksCache, issuer: FakeIssuer, clock: FixedClock, failure: str
) -> None:
    issuer.fail = failure
    with pytest.raises(KeysUnavailable):
        await jwks.get()
    assert jwks.failures == 1 and jwks.last_error is not None
    issuer.fail = None
    clock.advance(9)  # still rate-limited: no request, still unavailable
    with pytest.raises(KeysUnavailable):
        await jwks.get()
    assert len(issuer.requests) == 1
    clock.advance(1)
    assert len(await jwks.get()) == 3


@pytest.mark.parametrize("failure", ["500", "connect", "json", "empty"])
async def test_failed_refresh_keeps_the_old_keys(
    jwks: JwksCache, issuer: FakeIssuer, clock: FixedClock, failure: str
) -> None:
    keys = await jwks.get()
    issuer.fail = failure
    clock.advance(400)
    assert await jwks.get() is keys
    assert jwks.failures == 1
    clock.advance(5)  # a failed attempt also counts for the rate limit
    assert await jwks.get() is keys
    assert len(issuer.requests) == 2
    issuer.fail = None
    clock.advance(5)
    assert (await jwks.get()).kids == keys.kids
    assert jwks.last_error is None and len(issuer.requests) == 3


async def test_verifier_accepts_and_denies(verifier: Verifier, minter: Minter) -> None:
    verified = await verifier.verify(minter.mint("ed-1"))
    assert verified.sub == "user-1"
    with pytest.raises(Denied) as info:
        await verifier.verify(minter.mint(aud="elsewhere"))
    assert info.value.reason is Reason.WRONG_AUDIENCE
    with pytest.raises(Denied) as info:
        await verifier.verify(minter.mint(), policy=policy(required_scopes={"admin"}))
    assert info.value.reason is Reason.INSUFFICIENT_SCOPE


async def test_verifier_applies_revocations(verifier: Verifier, minter: Minter) -> None:
    token = minter.mint(jti="j-1")
    await verifier.verify(token)
    verifier.state.apply({"seq": 1, "kind": "token.revoked", "key": "j-1", "at": NOW,
                          "expires_at": NOW + 600})
    with pytest.raises(Denied) as info:
        await verifier.verify(token)
    assert info.value.reason is Reason.TOKEN_REVOKED


async def test_unknown_kid_refetch_is_rate_limited(
    verifier: Verifier, minter: Minter, issuer: FakeIssuer, clock: FixedClock
) -> None:
    await verifier.verify(minter.mint("rs-1"))
    assert len(issuer.requests) == 1
    minter.keys["junk"] = ("EdDSA", generate("EdDSA"))
    junk = minter.mint("junk")
    del minter.keys["junk"]  # never published
    clock.advance(11)
    for _ in range(5):
        with pytest.raises(Denied) as info:
            await verifier.verify(junk)
        assert info.value.reason is Reason.UNKNOWN_KID
        clock.advance(1)
    assert len(issuer.requests) == 2  # one refetch for five unknown-kid tokens in 5 s
    clock.advance(10)
    with pytest.raises(Denied):
        await verifier.verify(junk)
    assert len(issuer.requests) == 3


async def test_rotation_new_kid_is_accepted_after_refetch(
    verifier: Verifier, minter: Minter, issuer: FakeIssuer, clock: FixedClock
) -> None:
    old_token = minter.mint("rs-1")
    await verifier.verify(old_token)
    minter.keys["rs-2"] = ("RS256", generate("RS256"))
    token = minter.mint("rs-2")
    clock.advance(2)  # the rotation happened right after our fetch: still rate-limited
    with pytest.raises(Denied) as info:
        await verifier.verify(token)
    assert info.value.reason is Reason.UNKNOWN_KID
    clock.advance(10)
    assert (await verifier.verify(token)).kid == "rs-2"
    assert len(issuer.requests) == 2
    # the retired key leaves the JWKS: its tokens stop verifying, cached or not
    assert (await verifier.verify(old_token)).kid == "rs-1"
    del minter.keys["rs-1"]
    clock.advance(300)
    assert (await verifier.verify(token)).kid == "rs-2"
    assert len(issuer.requests) == 3
    with pytest.raises(Denied) as info:
        await verifier.verify(old_token)
    assert info.value.reason is Reason.UNKNOWN_KID


async def test_key_rotated_event_triggers_a_refetch(
    verifier: Verifier, minter: Minter, issuer: FakeIssuer, clock: FixedClock
) -> None:
    await verifier.verify(minter.mint("es-1"))
    minter.keys["es-2"] = ("ES256", generate("ES256"))
    clock.advance(60)
    verifier.state.apply({"seq": 1, "kind": "key.rotated", "key": "es-2", "at": NOW,
                          "expires_at": NOW + 600})
    await verifier.verify(minter.mint("es-1"))  # a known kid, yet the hint refetches
    assert len(issuer.requests) == 2
    assert "es-2" in verifier.jwks.keys  # type: ignore[operator]


async def test_concurrent_unknown_kids_share_one_fetch(
    verifier: Verifier, minter: Minter, issuer: FakeIssuer, clock: FixedClock
) -> None:
    await verifier.verify(minter.mint("rs-1"))
    minter.keys["ed-2"] = ("EdDSA", generate("EdDSA"))
    clock.advance(30)
    tokens = [minter.mint("ed-2") for _ in range(10)]
    results: list[Any] = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert {r.kid for r in results} == {"ed-2"}
    assert len(issuer.requests) == 2


async def test_custom_jwks_uri(minter: Minter, clock: FixedClock) -> None:
    issuer = FakeIssuer(minter)
    cache = JwksCache(ISSUER, clock=clock, transport=httpx.MockTransport(issuer),
                      jwks_uri=f"{ISSUER}/elsewhere")
    try:
        with pytest.raises(KeysUnavailable):
            await cache.get()
        assert issuer.requests[0].url.path == "/elsewhere"
    finally:
        await cache.aclose()


async def test_slow_refresh_does_not_block_callers_with_known_keys(
    minter: Minter, clock: FixedClock
) -> None:
    release = asyncio.Event()
    calls = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > 1:
            await release.wait()
        return httpx.Response(200, json=minter.jwks())

    cache = JwksCache(ISSUER, clock=clock, transport=httpx.MockTransport(slow))
    try:
        keys = await cache.get()
        clock.advance(301)
        refresh = asyncio.create_task(cache.get())
        await asyncio.sleep(0)
        assert await asyncio.wait_for(cache.get(), timeout=1) is keys
        release.set()
        assert (await refresh).kids == keys.kids and calls == 2
    finally:
        await cache.aclose()
