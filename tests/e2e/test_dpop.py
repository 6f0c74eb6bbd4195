"""DPoP (RFC 9449) against the real identity service: proofs at the token endpoint bind
access tokens (``cnf.jkt``) and public clients' refresh tokens to the key; nonces,
replays, wrong method/URL/key; introspection, userinfo, token exchange and discovery.
Proofs are built with PyJWT (``tests.dpop_client``), never with the code under test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.core.clock import FixedClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.store.sql import SqlStore
from tests.conftest import ISSUER, make_identity, make_settings
from tests.dpop_client import DPoPKey
from tests.e2e.helpers import claims_of, client_token
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair

TOKEN_URL = f"{ISSUER}/token"
USERINFO_URL = f"{ISSUER}/userinfo"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture(scope="module")
def key() -> DPoPKey:
    return DPoPKey("ES256")


@pytest.fixture(scope="module")
def other_key() -> DPoPKey:
    return DPoPKey("EdDSA")


async def post_token(tessera: TesseraDriver, app: AppClient, proof: str | None,
                     **data: str) -> httpx.Response:
    if app.secret is None:
        data.setdefault("client_id", app.client_id)
    headers = {"dpop": proof} if proof is not None else {}
    return await tessera.http.post("/token", data=data, auth=app.auth,  # type: ignore[arg-type]
                                   headers=headers)


def proof_for(key: DPoPKey, clock: FixedClock, **kw: Any) -> str:
    return key.proof("POST", TOKEN_URL, iat=clock.now(), **kw)


async def public_login(tessera: TesseraDriver, key: DPoPKey, clock: FixedClock
                       ) -> tuple[AppClient, httpx.Response]:
    """A public client's code exchange, with a proof of ``key``."""
    app = await tessera.web_client(public=True)
    await tessera.user()
    verifier, challenge = pkce_pair()
    code = await tessera.authorize_code(app, challenge=challenge)
    response = await post_token(tessera, app, proof_for(key, clock),
                                grant_type="authorization_code", code=code,
                                redirect_uri=REDIRECT, code_verifier=verifier)
    return app, response


# -- discovery and issuance ---------------------------------------------------------------


async def test_discovery_advertises_the_proof_algorithms(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "RS256"]


async def test_a_valid_proof_binds_the_access_token(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey) -> None:
    app = await tessera.client()
    response = await post_token(tessera, app, proof_for(key, clock),
                                grant_type="client_credentials")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.jkt}
    assert response.headers["dpop-nonce"]  # a nonce for the client's next proof
    introspected = await tessera.introspect(app, body["access_token"])
    assert introspected["active"] is True
    assert introspected["token_type"] == "DPoP"
    assert introspected["cnf"] == {"jkt": key.jkt}


async def test_without_a_proof_tokens_stay_bearer(tessera: TesseraDriver) -> None:
    app = await tessera.client()
    response = await post_token(tessera, app, None, grant_type="client_credentials")
    assert response.json()["token_type"] == "Bearer"
    assert "cnf" not in claims_of(response.json()["access_token"])
    assert "dpop-nonce" not in response.headers


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
async def test_every_advertised_algorithm_works(
        tessera: TesseraDriver, clock: FixedClock, alg: str) -> None:
    key = DPoPKey(alg)
    app = await tessera.client()
    response = await post_token(tessera, app, proof_for(key, clock),
                                grant_type="client_credentials")
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["cnf"]["jkt"] == key.jkt


# -- refused proofs -----------------------------------------------------------------------


def refused(response: httpx.Response, error: str = "invalid_dpop_proof") -> bool:
    return response.status_code == 400 and response.json()["error"] == error \
        and response.headers["cache-control"] == "no-store"


async def test_a_replayed_proof_is_refused(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey) -> None:
    app = await tessera.client()
    proof = proof_for(key, clock)
    first = await post_token(tessera, app, proof, grant_type="client_credentials")
    assert first.status_code == 200, first.text
    replay = await post_token(tessera, app, proof, grant_type="client_credentials")
    assert refused(replay), replay.text


async def test_wrong_method_url_or_stale_proofs_are_refused(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey) -> None:
    app = await tessera.client()
    for proof in (key.proof("GET", TOKEN_URL, iat=clock.now()),
                  key.proof("POST", f"{ISSUER}/revoke", iat=clock.now()),
                  key.proof("POST", "https://elsewhere.example/token", iat=clock.now()),
                  key.proof("POST", TOKEN_URL, iat=clock.now() - 120),
                  key.proof("POST", TOKEN_URL, iat=clock.now(), header={"typ": "JWT"}),
                  "not-a-proof"):
        response = await post_token(tessera, app, proof, grant_type="client_credentials")
        assert refused(response), response.text


async def test_two_dpop_headers_are_refused(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey) -> None:
    app = await tessera.client()
    response = await tessera.http.post(
        "/token", data={"grant_type": "client_credentials"},
        auth=app.auth,  # type: ignore[arg-type]
        headers=[("dpop", proof_for(key, clock)), ("dpop", proof_for(key, clock))])
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


# -- refresh tokens -----------------------------------------------------------------------


async def test_a_public_clients_refresh_token_is_bound_to_the_key(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey, other_key: DPoPKey) -> None:
    app, login = await public_login(tessera, key, clock)
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["token_type"] == "DPoP"
    assert claims_of(tokens["access_token"])["cnf"] == {"jkt": key.jkt}
    refresh_token = tokens["refresh_token"]

    without = await post_token(tessera, app, None, grant_type="refresh_token",
                               refresh_token=refresh_token)
    assert refused(without, "invalid_grant"), without.text
    wrong_key = await post_token(tessera, app, proof_for(other_key, clock),
                                 grant_type="refresh_token", refresh_token=refresh_token)
    assert refused(wrong_key, "invalid_grant"), wrong_key.text
    bad_proof = await post_token(tessera, app, key.proof("GET", TOKEN_URL, iat=clock.now()),
                                 grant_type="refresh_token", refresh_token=refresh_token)
    assert refused(bad_proof), bad_proof.text

    # none of that burnt the token: the holder of the key refreshes
    good = await post_token(tessera, app, proof_for(key, clock), grant_type="refresh_token",
                            refresh_token=refresh_token)
    assert good.status_code == 200, good.text
    assert good.json()["token_type"] == "DPoP"
    assert claims_of(good.json()["access_token"])["cnf"] == {"jkt": key.jkt}
    # and the successor is bound as well
    onward = await post_token(tessera, app, proof_for(other_key, clock),
                              grant_type="refresh_token",
                              refresh_token=good.json()["refresh_token"])
    assert refused(onward, "invalid_grant"), onward.text


async def test_a_confidential_clients_refresh_token_is_not_bound(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey) -> None:
    app = await tessera.web_client()
    await tessera.user()
    verifier, challenge = pkce_pair()
    code = await tessera.authorize_code(app, challenge=challenge)
    login = await post_token(tessera, app, proof_for(key, clock),
                             grant_type="authorization_code", code=code,
                             redirect_uri=REDIRECT, code_verifier=verifier)
    assert login.status_code == 200, login.text
    assert claims_of(login.json()["access_token"])["cnf"] == {"jkt": key.jkt}
    refresh_token = login.json()["refresh_token"]
    assert "cnf" not in await tessera.introspect(app, refresh_token)
    # RFC 9449 §5: bound to the client's authentication, not to the key
    plain = await post_token(tessera, app, None, grant_type="refresh_token",
                             refresh_token=refresh_token)
    assert plain.status_code == 200, plain.text
    assert plain.json()["token_type"] == "Bearer"
    assert "cnf" not in claims_of(plain.json()["access_token"])


async def test_the_refresh_family_remembers_the_key(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey) -> None:
    _, login = await public_login(tessera, key, clock)
    async with tessera.identity.store.unit_of_work(read_only=True) as uow:
        families = await uow.refresh.families_for_session(
            claims_of(login.json()["access_token"])["sid"])
    assert [f.jkt for f in families] == [key.jkt]


# -- nonces -------------------------------------------------------------------------------


@pytest.fixture
async def service_with(tmp_path: Path, sqlite_store: SqlStore, clock: FixedClock
                       ) -> AsyncIterator[Callable[..., Awaitable[TesseraDriver]]]:
    """Builds the identity service with other DPoP settings (``dpop`` section)."""
    made: list[tuple[Identity, httpx.AsyncClient]] = []

    async def make(**dpop: Any) -> TesseraDriver:
        identity = await make_identity(make_settings(tmp_path, dpop=dpop), sqlite_store, clock)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                                   base_url=ISSUER)
        made.append((identity, client))
        return TesseraDriver(identity, client)

    yield make
    for identity, client in made:
        await client.aclose()
        await identity.audit.aclose()


async def test_nonce_flow(service_with: Callable[..., Awaitable[TesseraDriver]],
                          clock: FixedClock, key: DPoPKey) -> None:
    tessera = await service_with(require_nonce=True)
    app = await tessera.client()
    first = await post_token(tessera, app, proof_for(key, clock),
                             grant_type="client_credentials")
    assert refused(first, "use_dpop_nonce"), first.text
    nonce = first.headers["dpop-nonce"]
    second = await post_token(tessera, app, proof_for(key, clock, nonce=nonce),
                              grant_type="client_credentials")
    assert second.status_code == 200, second.text
    assert second.json()["token_type"] == "DPoP"
    assert second.headers["dpop-nonce"]
    forged = await post_token(tessera, app, proof_for(key, clock, nonce="x" + nonce),
                              grant_type="client_credentials")
    assert refused(forged, "use_dpop_nonce")
    assert forged.headers["dpop-nonce"] == nonce  # the current one, again
    clock.advance(2 * 300)
    expired = await post_token(tessera, app, proof_for(key, clock, nonce=nonce),
                               grant_type="client_credentials")
    assert refused(expired, "use_dpop_nonce")
    assert expired.headers["dpop-nonce"] != nonce


async def test_with_dpop_disabled_the_header_is_ignored(
        service_with: Callable[..., Awaitable[TesseraDriver]], clock: FixedClock,
        key: DPoPKey) -> None:
    tessera = await service_with(enabled=False)
    metadata = (await tessera.http.get("/.well-known/openid-configuration")).json()
    assert "dpop_signing_alg_values_supported" not in metadata
    app = await tessera.client()
    response = await post_token(tessera, app, "garbage", grant_type="client_credentials")
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


# -- resources at the issuer: userinfo -----------------------------------------------------


async def test_userinfo_wants_the_dpop_scheme_and_a_proof_for_bound_tokens(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey, other_key: DPoPKey) -> None:
    _, login = await public_login(tessera, key, clock)
    token = login.json()["access_token"]

    as_bearer = await tessera.http.get("/userinfo", headers={"authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401
    assert as_bearer.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    assert 'algs="ES256 EdDSA RS256"' in as_bearer.headers["www-authenticate"]

    def get(proof: str) -> Awaitable[httpx.Response]:
        return tessera.http.get("/userinfo", headers={"authorization": f"DPoP {token}",
                                                      "dpop": proof})

    no_ath = await get(key.proof("GET", USERINFO_URL, iat=clock.now()))
    assert no_ath.status_code == 401 and no_ath.json()["error"] == "invalid_dpop_proof"
    assert no_ath.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    wrong_key = await get(other_key.proof("GET", USERINFO_URL, iat=clock.now(),
                                          access_token=token))
    assert wrong_key.status_code == 401 and wrong_key.json()["error"] == "invalid_token"
    wrong_url = await get(key.proof("GET", TOKEN_URL, iat=clock.now(), access_token=token))
    assert wrong_url.json()["error"] == "invalid_dpop_proof"

    proof = key.proof("GET", USERINFO_URL, iat=clock.now(), access_token=token)
    ok = await get(proof)
    assert ok.status_code == 200, ok.text
    assert ok.json()["preferred_username"] == "alice"
    replay = await get(proof)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_dpop_proof"


async def test_an_unbound_token_cannot_be_sent_as_dpop(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey) -> None:
    app = await tessera.web_client()
    await tessera.user()
    token = (await tessera.login_tokens(app))["access_token"]
    response = await tessera.http.get("/userinfo", headers={
        "authorization": f"DPoP {token}",
        "dpop": key.proof("GET", USERINFO_URL, iat=clock.now(), access_token=token)})
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    bearer = await tessera.http.get("/userinfo", headers={"authorization": f"Bearer {token}"})
    assert bearer.status_code == 200, bearer.text


# -- token exchange ----------------------------------------------------------------------


async def _gateway(tessera: TesseraDriver, *grants: str) -> AppClient:
    """A gateway fronting https://api.example, exchanging for the orders service."""
    return await tessera.client(grants=grants or (EXCHANGE,), scope="api:read api:write",
                                audiences=("https://orders.internal",),
                                subject_audiences=("https://api.example",))


async def test_a_bound_subject_token_is_exchanged_only_with_a_proof_of_its_key(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey, other_key: DPoPKey) -> None:
    """RFC 9449 §7: holding a bound token is not enough to exchange it; the proof must be
    of its key, and the exchanged token stays bound to that key."""
    _, login = await public_login(tessera, key, clock)
    subject = login.json()["access_token"]  # bound to ``key``
    gateway = await _gateway(tessera)
    data = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": AT,
            "audience": "https://orders.internal"}

    plain = await post_token(tessera, gateway, None, **data)
    assert plain.status_code == 400 and plain.json()["error"] == "invalid_grant"
    assert "DPoP" in plain.json()["error_description"]
    wrong_key = await post_token(tessera, gateway, proof_for(other_key, clock), **data)
    assert wrong_key.status_code == 400 and wrong_key.json()["error"] == "invalid_grant"

    bound = await post_token(tessera, gateway, proof_for(key, clock), **data)
    assert bound.status_code == 200, bound.text
    assert bound.json()["token_type"] == "DPoP"
    assert claims_of(bound.json()["access_token"])["cnf"] == {"jkt": key.jkt}


async def test_an_unbound_subject_is_bound_to_the_exchanging_partys_proof(
        tessera: TesseraDriver, clock: FixedClock, other_key: DPoPKey) -> None:
    app = await tessera.web_client()
    await tessera.user()
    subject = (await tessera.login_tokens(app))["access_token"]
    gateway = await _gateway(tessera)
    data = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": AT,
            "audience": "https://orders.internal"}
    plain = await post_token(tessera, gateway, None, **data)
    assert plain.status_code == 200 and plain.json()["token_type"] == "Bearer"
    assert "cnf" not in claims_of(plain.json()["access_token"])
    bound = await post_token(tessera, gateway, proof_for(other_key, clock), **data)
    assert bound.status_code == 200, bound.text
    assert claims_of(bound.json()["access_token"])["cnf"] == {"jkt": other_key.jkt}


async def test_a_bound_actor_token_needs_a_proof_of_its_key(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey, other_key: DPoPKey) -> None:
    app = await tessera.web_client()
    await tessera.user()
    subject = (await tessera.login_tokens(app))["access_token"]
    gateway = await _gateway(tessera, EXCHANGE, "client_credentials")
    issued = await post_token(tessera, gateway, proof_for(key, clock),
                              grant_type="client_credentials")
    actor = issued.json()["access_token"]  # the gateway's own token, bound to ``key``
    data = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": AT,
            "actor_token": actor, "actor_token_type": AT,
            "audience": "https://orders.internal"}
    for proof in (None, proof_for(other_key, clock)):
        refused_ = await post_token(tessera, gateway, proof, **data)
        assert refused_.status_code == 400 and refused_.json()["error"] == "invalid_grant"
        assert "actor_token" in refused_.json()["error_description"]
    ok = await post_token(tessera, gateway, proof_for(key, clock), **data)
    assert ok.status_code == 200, ok.text
    got = claims_of(ok.json()["access_token"])
    assert got["cnf"] == {"jkt": key.jkt} and got["act"] == {"sub": gateway.client_id}


async def test_bound_client_credentials_token_cannot_reach_the_admin_api_as_bearer(
        tessera: TesseraDriver, clock: FixedClock, key: DPoPKey) -> None:
    admin = await tessera.client(scope="tessera:admin", audiences=())
    response = await post_token(tessera, admin, proof_for(key, clock),
                                grant_type="client_credentials")
    token = response.json()["access_token"]
    refused_admin = await tessera.http.post("/admin/sessions", data={"action": "revoke",
                                                                     "sid": "nope"},
                                            headers={"authorization": f"Bearer {token}"})
    assert refused_admin.status_code == 401
    unbound = await client_token(tessera, admin)
    allowed = await tessera.http.post("/admin/sessions", data={"action": "revoke",
                                                               "sid": "nope"},
                                      headers={"authorization": f"Bearer {unbound}"})
    assert allowed.status_code == 200, allowed.text
