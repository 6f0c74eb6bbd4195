"""DPoP in the verifier SDK (RFC 9449 §7): the ASGI middleware, the FastAPI dependencies
and the plain API accept a ``cnf.jkt``-bound token only as ``Authorization: DPoP`` with a
proof of its key for the request; refusals carry ``WWW-Authenticate: DPoP ... algs``.
Proofs are built with PyJWT (``tests.dpop_client``), never with the code under test."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.core.clock import FixedClock
from tessera.protocol.rfc9449 import ReplayCacheUnavailable
from tessera.verifier import Denied, Reason, VerifiedToken
from tessera.verifier.asgi import RouteRule, VerifierMiddleware
from tessera.verifier.dpop import Presentation
from tessera.verifier.fastapi import install, require_token
from tessera.verifier.replay import RedisReplayCache
from tessera.verifier.service import VerifierService
from tests.conftest import REDIS_URL, require_service
from tests.dpop_client import DPoPKey

from ._services import audit_events, bearer, fresh, make_service
from ._support import NOW, Minter

BASE = "http://orders.test"
ALGS = 'algs="ES256 EdDSA RS256"'


async def whoami(request: Request) -> JSONResponse:
    token = request.state.tessera_token
    assert isinstance(token, VerifiedToken)
    return JSONResponse({"sub": token.sub, "jkt": token.cnf_jkt})


def build(service: VerifierService) -> VerifierMiddleware:
    app = Starlette(routes=[Route("/orders", whoami, methods=["GET", "POST"]),
                            Route("/reports", whoami)])
    return VerifierMiddleware(app, service, routes=[
        RouteRule("/reports", scopes=frozenset({"reports:read"}))])


@pytest.fixture(scope="module")
def key() -> DPoPKey:
    return DPoPKey("ES256")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


async def serve(minter: Minter, clock: FixedClock, **settings: Any
                ) -> tuple[VerifierService, httpx.AsyncClient]:
    service, _ = make_service(minter, clock=clock, **settings)
    fresh(service)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build(service)),
                               base_url=BASE)
    return service, client


@pytest.fixture
async def client(minter: Minter, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    service, client = await serve(minter, clock)
    yield client
    await client.aclose()
    await service.aclose()


def dpop(token: str, proof: str | None) -> dict[str, str]:
    headers = {"authorization": f"DPoP {token}"}
    if proof is not None:
        headers["dpop"] = proof
    return headers


def bound(minter: Minter, key: DPoPKey, **claims: Any) -> str:
    return minter.mint(cnf={"jkt": key.jkt}, **claims)


def refused(response: httpx.Response, error: str) -> str:
    """The challenge of a 401 refusal with ``error``."""
    assert response.status_code == 401, response.text
    assert response.json()["error"] == error
    challenge: str = response.headers["www-authenticate"]
    return challenge


# -- the middleware -------------------------------------------------------------------


async def test_a_bound_token_with_a_valid_proof_is_accepted(
        client: httpx.AsyncClient, minter: Minter, key: DPoPKey) -> None:
    token = bound(minter, key)
    proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
    response = await client.get("/orders?page=2", headers=dpop(token, proof))
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": "user-1", "jkt": key.jkt}


async def test_a_replayed_proof_is_refused(
        client: httpx.AsyncClient, minter: Minter, key: DPoPKey) -> None:
    token = bound(minter, key)
    proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
    assert (await client.get("/orders", headers=dpop(token, proof))).status_code == 200
    replay = await client.get("/orders", headers=dpop(token, proof))
    challenge = refused(replay, "invalid_dpop_proof")
    assert challenge.startswith('DPoP error="invalid_dpop_proof"') and ALGS in challenge
    assert token not in challenge


@pytest.mark.parametrize(("method", "url", "iat"), [
    ("POST", f"{BASE}/orders", NOW),                 # wrong method
    ("GET", f"{BASE}/reports", NOW),                 # wrong path
    ("GET", "https://orders.test/orders", NOW),      # wrong scheme
    ("GET", "http://evil.test/orders", NOW),         # wrong host
    ("GET", f"{BASE}/orders", NOW - 61),             # too old
    ("GET", f"{BASE}/orders", NOW + 61),             # from the future
])
async def test_proofs_for_another_request_or_time_are_refused(
        client: httpx.AsyncClient, minter: Minter, key: DPoPKey, method: str, url: str,
        iat: float) -> None:
    token = bound(minter, key)
    proof = key.proof(method, url, iat=iat, access_token=token)
    refused(await client.get("/orders", headers=dpop(token, proof)), "invalid_dpop_proof")


async def test_missing_ath_or_proof_or_two_proofs_are_refused(
        client: httpx.AsyncClient, minter: Minter, key: DPoPKey) -> None:
    token = bound(minter, key)
    no_ath = key.proof("GET", f"{BASE}/orders", iat=NOW)
    refused(await client.get("/orders", headers=dpop(token, no_ath)), "invalid_dpop_proof")
    other_ath = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=minter.mint())
    refused(await client.get("/orders", headers=dpop(token, other_ath)), "invalid_dpop_proof")
    refused(await client.get("/orders", headers=dpop(token, None)), "invalid_dpop_proof")
    proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
    two = await client.get("/orders", headers=[("authorization", f"DPoP {token}"),
                                               ("dpop", proof), ("dpop", proof)])
    refused(two, "invalid_dpop_proof")


async def test_a_proof_by_another_key_is_refused(
        client: httpx.AsyncClient, minter: Minter, key: DPoPKey) -> None:
    token = bound(minter, key)
    thief = DPoPKey("ES256")
    proof = thief.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
    challenge = refused(await client.get("/orders", headers=dpop(token, proof)),
                        "invalid_token")
    assert challenge.startswith('DPoP error="invalid_token"') and ALGS in challenge


async def test_a_bound_token_sent_as_bearer_is_refused(
        client: httpx.AsyncClient, minter: Minter, key: DPoPKey) -> None:
    token = bound(minter, key)
    proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
    response = await client.get("/orders", headers={**bearer(token), "dpop": proof})
    challenge = refused(response, "invalid_token")
    assert challenge.startswith("DPoP ") and ALGS in challenge


async def test_an_unbound_token_sent_as_dpop_is_refused_and_as_bearer_accepted(
        client: httpx.AsyncClient, minter: Minter, key: DPoPKey) -> None:
    token = minter.mint()
    proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
    refused(await client.get("/orders", headers=dpop(token, proof)), "invalid_token")
    # a DPoP header next to a Bearer token is ignored (RFC 9449 §7.2)
    response = await client.get("/orders", headers={**bearer(token), "dpop": "junk"})
    assert response.status_code == 200, response.text


async def test_an_invalid_token_sent_as_dpop_gets_a_dpop_challenge(
        client: httpx.AsyncClient, minter: Minter, key: DPoPKey) -> None:
    token = bound(minter, key, exp=int(NOW) - 600)
    proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
    challenge = refused(await client.get("/orders", headers=dpop(token, proof)),
                        "invalid_token")
    assert challenge.startswith('DPoP error="invalid_token"')


async def test_scopes_are_checked_after_the_binding(
        client: httpx.AsyncClient, minter: Minter, key: DPoPKey) -> None:
    token = bound(minter, key)
    proof = key.proof("GET", f"{BASE}/reports", iat=NOW, access_token=token)
    response = await client.get("/reports", headers=dpop(token, proof))
    assert response.status_code == 403
    assert response.headers["www-authenticate"].startswith('DPoP error="insufficient_scope"')


async def test_refusals_are_recorded_with_dpop_reasons(
        minter: Minter, clock: FixedClock, key: DPoPKey,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tessera.audit")
    service, client = await serve(minter, clock)
    try:
        token = bound(minter, key)
        proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
        await client.get("/orders", headers=dpop(token, proof))
        await client.get("/orders", headers=dpop(token, proof))
        await client.get("/orders", headers=bearer(token))
    finally:
        await client.aclose()
        await service.aclose()
    reasons = [e["reason"] for e in audit_events(caplog.records)]
    assert reasons == ["valid", "dpop_replayed", "dpop_binding"]


async def test_nonce_flow(minter: Minter, clock: FixedClock, key: DPoPKey) -> None:
    service, client = await serve(minter, clock, dpop_require_nonce=True,
                                  dpop_nonce_secret="n" * 40)
    try:
        token = bound(minter, key)
        first = await client.get("/orders", headers=dpop(token, key.proof(
            "GET", f"{BASE}/orders", iat=NOW, access_token=token)))
        challenge = refused(first, "use_dpop_nonce")
        assert challenge.startswith('DPoP error="use_dpop_nonce"')
        nonce = first.headers["dpop-nonce"]
        second = await client.get("/orders", headers=dpop(token, key.proof(
            "GET", f"{BASE}/orders", iat=NOW, access_token=token, nonce=nonce)))
        assert second.status_code == 200, second.text
    finally:
        await client.aclose()
        await service.aclose()


async def test_htu_against_the_public_url_behind_a_proxy(
        minter: Minter, clock: FixedClock, key: DPoPKey) -> None:
    service, client = await serve(minter, clock, dpop_public_url="https://api.example.com/v1")
    try:
        token = bound(minter, key)
        internal = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
        refused(await client.get("/orders", headers=dpop(token, internal)),
                "invalid_dpop_proof")
        public = key.proof("GET", "https://api.example.com/v1/orders", iat=NOW,
                           access_token=token)
        assert (await client.get("/orders", headers=dpop(token, public))).status_code == 200
    finally:
        await client.aclose()
        await service.aclose()


# -- FastAPI and the plain API -------------------------------------------------------------


async def test_fastapi_dependency_after_the_middleware_checks_the_proof_once(
        minter: Minter, clock: FixedClock, key: DPoPKey) -> None:
    service, _ = make_service(minter, clock=clock)
    fresh(service)
    app = FastAPI()
    install(app, service)

    @app.get("/orders")
    async def orders(token: Annotated[VerifiedToken, Depends(require_token)]
                     ) -> dict[str, Any]:
        return {"jkt": token.cnf_jkt}

    @app.get("/plain")
    async def plain(token: Annotated[VerifiedToken, Depends(require_token)]
                    ) -> dict[str, Any]:
        return {"jkt": token.cnf_jkt}

    wrapped = VerifierMiddleware(app, service, public=["/plain"])
    token = bound(minter, key)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped),
                                 base_url=BASE) as client:
        proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
        both = await client.get("/orders", headers=dpop(token, proof))
        assert both.status_code == 200, both.text
        # the dependency alone (public to the middleware) checks the proof itself
        proof = key.proof("GET", f"{BASE}/plain", iat=NOW, access_token=token)
        alone = await client.get("/plain", headers=dpop(token, proof))
        assert alone.status_code == 200, alone.text
        again = await client.get("/plain", headers=dpop(token, proof))
        assert again.status_code == 401 and again.json()["error"] == "invalid_dpop_proof"
        assert again.headers["www-authenticate"].startswith("DPoP ")
        as_bearer = await client.get("/plain", headers=bearer(token))
        assert as_bearer.status_code == 401
    await service.aclose()


async def test_plain_api_takes_a_presentation(
        minter: Minter, clock: FixedClock, key: DPoPKey) -> None:
    service, _ = make_service(minter, clock=clock)
    fresh(service)
    token = bound(minter, key)
    with pytest.raises(Denied) as as_bearer:
        await service.check(token)
    assert as_bearer.value.reason is Reason.DPOP_BINDING
    url = "https://orders.example/orders"
    proof = key.proof("POST", url, iat=NOW, access_token=token)
    verified = await service.check(token, presentation=Presentation(
        "dpop", (proof,), "POST", url))
    assert verified.cnf_jkt == key.jkt
    await service.aclose()


# -- the shared replay cache -------------------------------------------------------------


class FakeRedis:
    """``SET key value NX EX`` as Redis answers it (True or None), or a failure."""

    def __init__(self, fail: bool = False) -> None:
        self.keys: dict[str, int] = {}
        self.fail = fail

    async def set(self, name: str, value: bytes, *, nx: bool, ex: int) -> bool | None:
        if self.fail:
            raise ConnectionError("redis down")
        assert nx and ex >= 1
        if name in self.keys:
            return None
        self.keys[name] = ex
        return True

    async def aclose(self) -> None:
        pass


async def test_redis_replay_cache_is_set_nx_ex_and_fails_closed() -> None:
    fake = FakeRedis()
    cache = RedisReplayCache(fake, prefix="p:")  # type: ignore[arg-type]
    assert await cache.first_use("k", ttl=60.2, now=NOW)
    assert not await cache.first_use("k", ttl=60, now=NOW)
    assert fake.keys == {"p:k": 61}
    down = RedisReplayCache(FakeRedis(fail=True), prefix="p:")  # type: ignore[arg-type]
    with pytest.raises(ReplayCacheUnavailable):
        await down.first_use("k", ttl=60, now=NOW)


async def test_replay_cache_down_is_503(minter: Minter, clock: FixedClock,
                                        key: DPoPKey) -> None:
    service, client = await serve(minter, clock)
    service.dpop.checker.replay = RedisReplayCache(FakeRedis(fail=True))  # type: ignore[arg-type]
    try:
        token = bound(minter, key)
        proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
        response = await client.get("/orders", headers=dpop(token, proof))
        assert response.status_code == 503
    finally:
        await client.aclose()
        await service.aclose()


@pytest.mark.redis
async def test_redis_replay_cache_against_a_real_server(minter: Minter, clock: FixedClock,
                                                        key: DPoPKey) -> None:
    url = require_service(REDIS_URL, "redis")
    service, client = await serve(minter, clock, dpop_replay_cache="redis",
                                  dpop_redis_url=url)
    other, other_client = await serve(minter, clock, dpop_replay_cache="redis",
                                      dpop_redis_url=url)
    try:
        token = bound(minter, key)
        proof = key.proof("GET", f"{BASE}/orders", iat=NOW, access_token=token)
        assert (await client.get("/orders", headers=dpop(token, proof))).status_code == 200
        # another replica of the same service shares the cache: the replay is caught
        replay = await other_client.get("/orders", headers=dpop(token, proof))
        assert replay.status_code == 401 and replay.json()["error"] == "invalid_dpop_proof"
    finally:
        for c in (client, other_client):
            await c.aclose()
        for s in (service, other):
            await s.aclose()
