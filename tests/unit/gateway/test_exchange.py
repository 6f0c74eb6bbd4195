"""The RFC 8693 client and its cache, against ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tessera.core.clock import FixedClock
from tessera.core.secrets import token_hash
from tessera.gateway.exchange import (
    TOKEN_TYPE_ACCESS_TOKEN,
    ExchangeCache,
    ExchangedToken,
    ExchangeRefused,
    ExchangeUnavailable,
    TokenExchanger,
)

from ._support import CLIENT_ID, CLIENT_SECRET, NOW, IdentityStub, basic

ENDPOINT = "http://identity.test/token"
DOWNSTREAM = "https://orders.internal"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def stub() -> IdentityStub:
    return IdentityStub()


@pytest.fixture
async def exchanger(clock: FixedClock, stub: IdentityStub) -> AsyncIterator[TokenExchanger]:
    client = TokenExchanger(ENDPOINT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                            clock=clock, transport=httpx.MockTransport(stub),
                            max_entries=3, refresh_margin=15)
    yield client
    await client.aclose()


async def test_the_request_is_rfc8693_with_client_authentication(
        exchanger: TokenExchanger, stub: IdentityStub) -> None:
    assert await exchanger.exchange("subject.token", DOWNSTREAM, "orders:read") == "exchanged-1"
    assert stub.exchanges == [{
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": "subject.token", "subject_token_type": TOKEN_TYPE_ACCESS_TOKEN,
        "audience": DOWNSTREAM, "scope": "orders:read"}]
    assert stub.authorizations == [basic()]
    await exchanger.exchange("other.token", DOWNSTREAM)
    assert "scope" not in stub.exchanges[1]


async def test_cached_per_subject_token_audience_and_scope(
        exchanger: TokenExchanger, stub: IdentityStub) -> None:
    first = await exchanger.exchange("t1", DOWNSTREAM)
    assert await exchanger.exchange("t1", DOWNSTREAM) == first
    assert len(stub.exchanges) == 1
    assert await exchanger.exchange("t1", "https://billing.internal") != first
    assert await exchanger.exchange("t2", DOWNSTREAM) != first
    assert await exchanger.exchange("t1", DOWNSTREAM, "narrow") != first
    assert len(stub.exchanges) == 4
    assert (exchanger.hits, exchanger.misses) == (1, 4)


async def test_the_cache_holds_hashes_not_subject_tokens(exchanger: TokenExchanger) -> None:
    await exchanger.exchange("secret.subject.token", DOWNSTREAM)
    keys = list(exchanger.cache._entries)
    assert keys == [(token_hash("secret.subject.token"), DOWNSTREAM, None)]


async def test_entries_expire_shortly_before_the_exchanged_token(
        exchanger: TokenExchanger, stub: IdentityStub, clock: FixedClock) -> None:
    stub.expires_in = 120
    first = await exchanger.exchange("t1", DOWNSTREAM)
    clock.advance(104)
    assert await exchanger.exchange("t1", DOWNSTREAM) == first
    clock.advance(1)  # 105 s: 15 s before expiry
    assert await exchanger.exchange("t1", DOWNSTREAM) != first
    assert len(stub.exchanges) == 2


async def test_short_lived_tokens_keep_half_their_life(
        exchanger: TokenExchanger, stub: IdentityStub, clock: FixedClock) -> None:
    stub.expires_in = 10
    first = await exchanger.exchange("t1", DOWNSTREAM)
    clock.advance(4.9)
    assert await exchanger.exchange("t1", DOWNSTREAM) == first
    clock.advance(0.1)
    assert await exchanger.exchange("t1", DOWNSTREAM) != first


async def test_a_token_without_expires_in_is_used_once(
        exchanger: TokenExchanger, stub: IdentityStub) -> None:
    stub.exchange_answer = httpx.Response(200, json={"access_token": "x", "token_type": "Bearer"})
    await exchanger.exchange("t1", DOWNSTREAM)
    await exchanger.exchange("t1", DOWNSTREAM)
    assert len(stub.exchanges) == 2 and len(exchanger.cache) == 0


async def test_the_cache_is_bounded_least_recently_used_first(
        exchanger: TokenExchanger, stub: IdentityStub) -> None:
    for subject in ("t1", "t2", "t3"):
        await exchanger.exchange(subject, DOWNSTREAM)
    await exchanger.exchange("t1", DOWNSTREAM)  # t1 is now the most recent
    await exchanger.exchange("t4", DOWNSTREAM)  # evicts t2
    assert len(exchanger.cache) == 3
    calls = len(stub.exchanges)
    await exchanger.exchange("t1", DOWNSTREAM)
    assert len(stub.exchanges) == calls
    await exchanger.exchange("t2", DOWNSTREAM)
    assert len(stub.exchanges) == calls + 1


def test_cache_bounds() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ExchangeCache(0)
    cache = ExchangeCache(1)
    cache.put(("a", "aud", None), ExchangedToken("x", NOW + 60, NOW + 45))
    assert cache.get(("a", "aud", None), NOW + 44) is not None
    assert cache.get(("a", "aud", None), NOW + 45) is None
    assert len(cache) == 0


async def test_concurrent_requests_share_one_call(clock: FixedClock) -> None:
    release = asyncio.Event()
    calls = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await release.wait()
        return httpx.Response(200, json={"access_token": "shared", "token_type": "Bearer",
                                         "expires_in": 60})

    exchanger = TokenExchanger(ENDPOINT, client_id="c", client_secret="s", clock=clock,
                               transport=httpx.MockTransport(slow))
    try:
        tasks = [asyncio.create_task(exchanger.exchange("t1", DOWNSTREAM)) for _ in range(10)]
        await asyncio.sleep(0.01)
        release.set()
        assert await asyncio.gather(*tasks) == ["shared"] * 10
        assert calls == 1
    finally:
        await exchanger.aclose()


async def test_concurrent_waiters_see_the_failure_too(clock: FixedClock) -> None:
    release = asyncio.Event()

    async def failing(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(503)

    exchanger = TokenExchanger(ENDPOINT, client_id="c", client_secret="s", clock=clock,
                               transport=httpx.MockTransport(failing))
    try:
        tasks = [asyncio.create_task(exchanger.exchange("t1", DOWNSTREAM)) for _ in range(3)]
        await asyncio.sleep(0.01)
        release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, ExchangeUnavailable) for r in results)
        assert exchanger.failures == 1
    finally:
        await exchanger.aclose()


@pytest.mark.parametrize(("answer", "error"), [
    (httpx.Response(400, json={"error": "invalid_grant"}), "invalid_grant"),
    (httpx.Response(400, json={"error": "invalid_scope"}), "invalid_scope"),
    (httpx.Response(400, json={"error": "invalid_target"}), "invalid_target"),
    (httpx.Response(401, json={"error": "invalid_client"}), "invalid_client"),
])
async def test_refusals_carry_the_oauth_error(exchanger: TokenExchanger, stub: IdentityStub,
                                              answer: httpx.Response, error: str) -> None:
    stub.exchange_answer = answer
    with pytest.raises(ExchangeRefused) as caught:
        await exchanger.exchange("t1", DOWNSTREAM)
    assert caught.value.error == error


@pytest.mark.parametrize("answer", [
    httpx.ConnectError("refused"),
    httpx.ReadTimeout("slow"),
    httpx.Response(500, text="oops"),
    httpx.Response(503, json={"error": "temporarily_unavailable"}),
    httpx.Response(400, text="not json"),
    httpx.Response(400, json={"error": 'bad"\n'}),
    httpx.Response(200, text="not json"),
    httpx.Response(200, json=["a list"]),
    httpx.Response(200, json={"token_type": "Bearer", "expires_in": 60}),
    httpx.Response(200, json={"access_token": "a b", "token_type": "Bearer"}),
    httpx.Response(200, json={"access_token": "x" * 9000, "token_type": "Bearer"}),
    httpx.Response(200, json={"access_token": "x", "token_type": "DPoP"}),
    httpx.Response(200, content=b"{" + b" " * 70_000 + b"}"),
])
async def test_everything_else_is_unavailable_and_not_cached(
        exchanger: TokenExchanger, stub: IdentityStub,
        answer: httpx.Response | Exception) -> None:
    stub.exchange_answer = answer
    with pytest.raises(ExchangeUnavailable):
        await exchanger.exchange("t1", DOWNSTREAM)
    assert len(exchanger.cache) == 0 and exchanger.failures == 1
    stub.exchange_answer = None
    assert await exchanger.exchange("t1", DOWNSTREAM) == f"exchanged-{len(stub.exchanges)}"
