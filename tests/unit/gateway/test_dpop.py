"""DPoP at the gateway (RFC 9449 §7): the proxy forwards the original method and URI and
the ``DPoP`` header; a ``cnf.jkt`` token passes only with a proof of its key for exactly
that request. Proofs are built with PyJWT (``tests.dpop_client``)."""

from __future__ import annotations

import httpx
import pytest

from tests.dpop_client import DPoPKey

from ._support import NOW, gateway, mint

URL = "https://api.example/orders/7"
ALGS = 'algs="ES256 EdDSA RS256"'


@pytest.fixture(scope="module")
def key() -> DPoPKey:
    return DPoPKey("ES256")


def dpop_headers(token: str, proof: str | None, *, proto: str = "https") -> dict[str, str]:
    headers = {"authorization": f"DPoP {token}", "x-forwarded-proto": proto}
    if proof is not None:
        headers["dpop"] = proof
    return headers


async def nginx(gw: object, uri: str, headers: dict[str, str], method: str = "GET",
                host: str = "api.example") -> httpx.Response:
    sent = {"x-original-uri": uri, "x-original-method": method, "host": host, **headers}
    http: httpx.AsyncClient = gw.http  # type: ignore[attr-defined]
    return await http.get("/forward-auth", headers=sent)


def dpop_refusal(response: httpx.Response, error: str) -> str:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == error
    challenge: str = response.headers["www-authenticate"]
    assert challenge.startswith(f'DPoP error="{error}"') and ALGS in challenge
    return challenge


async def test_a_bound_token_with_a_proof_for_the_original_request_passes(key: DPoPKey
                                                                         ) -> None:
    token = mint(cnf={"jkt": key.jkt})
    async with gateway() as gw:
        proof = key.proof("GET", URL, iat=NOW, access_token=token)
        response = await nginx(gw, "/orders/7?page=2", dpop_headers(token, proof))
        assert response.status_code == 200, response.text
        assert response.headers["x-tessera-subject"] == "user-1"
        replay = await nginx(gw, "/orders/7?page=2", dpop_headers(token, proof))
        dpop_refusal(replay, "invalid_dpop_proof")


@pytest.mark.parametrize(("method", "url", "proto"), [
    ("POST", URL, "https"),                              # the proof's method is not GET
    ("GET", "https://api.example/orders/8", "https"),    # another resource
    ("GET", URL, "http"),                                # the client came over http
])
async def test_proofs_for_another_request_are_refused(
        key: DPoPKey, method: str, url: str, proto: str) -> None:
    token = mint(cnf={"jkt": key.jkt})
    async with gateway() as gw:
        proof = key.proof(method, url, iat=NOW, access_token=token)
        response = await nginx(gw, "/orders/7", dpop_headers(token, proof, proto=proto))
        dpop_refusal(response, "invalid_dpop_proof")


async def test_wrong_key_missing_ath_and_bearer_use_are_refused(key: DPoPKey) -> None:
    token = mint(cnf={"jkt": key.jkt})
    async with gateway() as gw:
        thief = DPoPKey("EdDSA").proof("GET", URL, iat=NOW, access_token=token)
        dpop_refusal(await nginx(gw, "/orders/7", dpop_headers(token, thief)),
                     "invalid_token")
        no_ath = key.proof("GET", URL, iat=NOW)
        dpop_refusal(await nginx(gw, "/orders/7", dpop_headers(token, no_ath)),
                     "invalid_dpop_proof")
        stale = key.proof("GET", URL, iat=NOW - 300, access_token=token)
        dpop_refusal(await nginx(gw, "/orders/7", dpop_headers(token, stale)),
                     "invalid_dpop_proof")
        as_bearer = await nginx(gw, "/orders/7", {"authorization": f"Bearer {token}"})
        dpop_refusal(as_bearer, "invalid_token")


async def test_unbound_tokens_keep_working_as_bearer(key: DPoPKey) -> None:
    token = mint()
    async with gateway() as gw:
        bearer = await nginx(gw, "/orders/7", {"authorization": f"Bearer {token}",
                                               "dpop": "ignored"})
        assert bearer.status_code == 200, bearer.text
        proof = key.proof("GET", URL, iat=NOW, access_token=token)
        dpop_refusal(await nginx(gw, "/orders/7", dpop_headers(token, proof)),
                     "invalid_token")


async def test_scope_refusal_of_a_dpop_request_is_a_dpop_challenge(key: DPoPKey) -> None:
    token = mint(cnf={"jkt": key.jkt}, scope="orders:write")
    async with gateway() as gw:
        proof = key.proof("GET", URL, iat=NOW, access_token=token)
        response = await nginx(gw, "/orders/7", dpop_headers(token, proof))
        assert response.status_code == 403
        assert response.headers["www-authenticate"].startswith(
            'DPoP error="insufficient_scope"')


async def test_nonce_is_demanded_and_sent_back_to_the_proxy(key: DPoPKey) -> None:
    token = mint(cnf={"jkt": key.jkt})
    async with gateway(dpop_require_nonce=True, dpop_nonce_secret="s" * 40) as gw:
        first = await nginx(gw, "/orders/7", dpop_headers(token, key.proof(
            "GET", URL, iat=NOW, access_token=token)))
        dpop_refusal(first, "use_dpop_nonce")
        nonce = first.headers["dpop-nonce"]
        second = await nginx(gw, "/orders/7", dpop_headers(token, key.proof(
            "GET", URL, iat=NOW, access_token=token, nonce=nonce)))
        assert second.status_code == 200, second.text


async def test_envoy_and_a_configured_public_url(key: DPoPKey) -> None:
    token = mint(cnf={"jkt": key.jkt})
    async with gateway(dpop_public_url="https://public.example:8443") as gw:
        proof = key.proof("GET", "https://public.example:8443/orders/7", iat=NOW,
                          access_token=token)
        response = await gw.http.get("/ext-authz/orders/7", headers={
            "host": "api.example", "authorization": f"DPoP {token}", "dpop": proof})
        assert response.status_code == 200, response.text


async def test_exchange_for_the_upstream_yields_an_unbound_token(key: DPoPKey) -> None:
    token = mint(cnf={"jkt": key.jkt})
    async with gateway() as gw:
        url = "https://api.example/downstream/x"
        proof = key.proof("GET", url, iat=NOW, access_token=token)
        response = await nginx(gw, "/downstream/x", dpop_headers(token, proof))
        assert response.status_code == 200, response.text
        assert response.headers["x-tessera-token"] == "exchanged-1"
        assert gw.stub.exchanges[0]["subject_token"] == token
