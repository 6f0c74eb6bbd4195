"""The backend-for-frontend end to end: a browser (httpx with cookie jars) signs in through
the BFF at the real identity service, calls an upstream API through it, logs out; and
everything a hostile page, a tampered cookie or a replayed callback tries is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tessera.bff import MemoryVault
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationKind
from tessera.identity.compose import Identity
from tessera.protocol.rfc9449 import check_proof
from tests.e2e.bff_support import API_AUDIENCE, BFF_URL, CSRF, BffWorld, make_world
from tests.e2e.helpers import claims_of, last_seq, published_kinds, verifier_verdict
from tests.support import TesseraDriver


@pytest.fixture
async def world(identity: Identity, tessera: TesseraDriver,
                clock: FixedClock) -> AsyncIterator[BffWorld]:
    built = await make_world(identity, tessera, clock)
    yield built
    await built.browser.aclose()
    await built.idp.aclose()


def _set_cookies(response: Any) -> list[str]:
    return [v for k, v in response.headers.multi_items() if k == "set-cookie"]


async def _bearer(world: BffWorld) -> str:
    response = await world.api("GET", "/bff/api/orders/items")
    assert response.status_code == 200, response.text
    authorization: str = world.upstream.seen[-1]["headers"]["authorization"]
    return authorization.split(" ", 1)[1]


# the journey ----------------------------------------------------------------------------
async def test_login_api_call_logout_then_refused(world: BffWorld) -> None:
    done = await world.login(return_to="/orders?tab=open")
    assert done.status_code == 303 and done.headers["location"] == "/orders?tab=open"

    me = await world.api("GET", "/bff/session")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["authenticated"] is True and body["claims"]["sub"] == body["sub"]
    assert "access_token" not in me.text and "refresh_token" not in me.text
    assert me.headers["cache-control"] == "no-store"

    called = await world.api("POST", "/bff/api/orders/items?limit=2", json={"sku": "a"},
                             headers={"cookie-probe": "x"})
    assert called.status_code == 200 and called.json()["path"] == "/v1/items"
    assert "set-cookie" not in called.headers  # upstream cookies never reach the browser
    assert "access-control-allow-origin" not in called.headers
    seen = world.upstream.seen[-1]
    assert seen["query"] == "limit=2" and seen["body"] == b'{"sku":"a"}'
    assert "cookie" not in seen["headers"] and "x-tessera-bff" not in seen["headers"]
    assert "origin" not in seen["headers"]
    scheme, token = seen["headers"]["authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = claims_of(token)
    assert claims["aud"] == API_AUDIENCE or API_AUDIENCE in claims["aud"]
    assert await verifier_verdict(world.identity, token, API_AUDIENCE) is None

    before = await last_seq(world.identity)
    out = await world.api("POST", "/bff/logout")
    assert out.status_code == 200, out.text
    result = out.json()
    assert result["logged_out"] is True and result["revoked"] is True
    logout_url = urlsplit(result["logout_url"])
    query = parse_qs(logout_url.query)
    assert f"{logout_url.scheme}://{logout_url.netloc}{logout_url.path}" == \
        f"{world.settings.issuer}/logout"
    assert query["post_logout_redirect_uri"] == [f"{BFF_URL}/"]
    assert any("__Host-tessera-bff=" in c and "Max-Age=0" in c for c in _set_cookies(out))

    # the tokens were revoked at the identity service: events every verifier follows
    kinds = {kind for kind, _ in await published_kinds(world.identity, before)}
    assert {RevocationKind.FAMILY_REVOKED, RevocationKind.TOKEN_REVOKED} <= kinds
    assert await verifier_verdict(world.identity, token, API_AUDIENCE) is not None

    # the browser follows logout_url: the identity session ends too (RP-initiated logout)
    ended = await world.idp.get(f"{logout_url.path}?{logout_url.query}")
    assert ended.status_code == 303 and ended.headers["location"] == f"{BFF_URL}/"
    kinds = {kind for kind, _ in await published_kinds(world.identity, before)}
    assert RevocationKind.SESSION_REVOKED in kinds

    refused = await world.api("GET", "/bff/api/orders/items")
    assert refused.status_code == 401 and refused.json()["error"] == "unauthenticated"
    assert (await world.api("GET", "/bff/session")).status_code == 401


async def test_session_cookie_is_host_prefixed_httponly_secure_strict(world: BffWorld) -> None:
    start = await world.browser.get("/bff/login")
    (login_cookie,) = _set_cookies(start)
    assert login_cookie.startswith("__Host-tessera-bff-login=")
    assert "HttpOnly" in login_cookie and "Secure" in login_cookie
    assert "SameSite=lax" in login_cookie and "Path=/" in login_cookie
    assert "Domain" not in login_cookie
    callback = await world.sign_in_at_idp(start.headers["location"])
    done = await world.browser.get(callback)
    session = next(c for c in _set_cookies(done) if c.startswith("__Host-tessera-bff="))
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attribute in session, session
    assert "Domain" not in session


async def test_authorization_request_uses_pkce_state_and_nonce(world: BffWorld) -> None:
    start = await world.browser.get("/bff/login")
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 43 and len(query["nonce"][0]) >= 43
    assert query["redirect_uri"] == [f"{BFF_URL}/bff/callback"]
    assert "openid" in query["scope"][0].split()


async def test_tokens_are_sealed_at_rest(world: BffWorld) -> None:
    await world.login()
    token = await _bearer(world)
    assert isinstance(world.vault, MemoryVault)
    stored = b"".join(value for value, _ in world.vault._items.values())
    assert token.encode() not in stored and b"refresh" not in stored
    assert all(key.startswith("session:") or key.startswith("login:")
               for key in world.vault._items)


# CSRF ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [("GET", "/bff/session"),
                                              ("POST", "/bff/logout"),
                                              ("GET", "/bff/api/orders/items"),
                                              ("DELETE", "/bff/api/orders/items/1")])
async def test_missing_csrf_header_or_foreign_origin_is_403(world: BffWorld, method: str,
                                                            path: str) -> None:
    await world.login()
    calls = len(world.upstream.seen)
    for headers in ({"origin": BFF_URL}, {**CSRF, "origin": "https://evil.example"},
                    {"x-tessera-bff": "0", "origin": BFF_URL},
                    {**CSRF, "origin": "null"},
                    {**CSRF, "origin": "https://bff.test.evil.example"}):
        response = await world.browser.request(method, path, headers=headers)
        assert response.status_code == 403, (headers, response.text)
        assert response.json()["error"] == "csrf_check_failed"
    assert len(world.upstream.seen) == calls  # nothing reached the upstream
    assert (await world.api("GET", "/bff/session")).status_code == 200  # still signed in


async def test_cross_site_post_without_origin_is_403(world: BffWorld) -> None:
    await world.login()
    response = await world.browser.post("/bff/api/orders/items",
                                        headers={**CSRF, "sec-fetch-site": "cross-site"})
    assert response.status_code == 403
    same = await world.browser.post("/bff/api/orders/items",
                                    headers={**CSRF, "sec-fetch-site": "same-origin"})
    assert same.status_code == 200


# cookies ---------------------------------------------------------------------------------
async def test_tampered_cookie_is_401(world: BffWorld) -> None:
    await world.login()
    value = world.browser.cookies["__Host-tessera-bff"]
    for forged in (value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
                   "x" + value, value.split(".")[0], "", "a" * 600):
        world.browser.cookies.clear()
        world.browser.cookies.set("__Host-tessera-bff", forged, domain="bff.test")
        response = await world.api("GET", "/bff/session")
        assert response.status_code == 401, forged
        assert response.json()["authenticated"] is False


async def test_cookie_past_the_absolute_timeout_is_401(world: BffWorld) -> None:
    await world.login()
    assert (await world.api("GET", "/bff/session")).status_code == 200
    world.clock.advance(world.settings.session_absolute_timeout + 1)
    assert (await world.api("GET", "/bff/session")).status_code == 401


async def test_an_unprefixed_cookie_is_ignored(world: BffWorld) -> None:
    await world.login()
    value = world.browser.cookies["__Host-tessera-bff"]
    world.browser.cookies.clear()
    world.browser.cookies.set("tessera-bff", value, domain="bff.test")
    assert (await world.api("GET", "/bff/session")).status_code == 401


# callback --------------------------------------------------------------------------------
async def test_state_mismatch_is_refused(world: BffWorld) -> None:
    start = await world.browser.get("/bff/login")
    callback = await world.sign_in_at_idp(start.headers["location"])
    query = parse_qs(urlsplit(callback).query)
    forged = f"/bff/callback?code={query['code'][0]}&state=forged"
    response = await world.browser.get(forged)
    assert response.status_code == 400 and "state" in response.text
    assert "__Host-tessera-bff=" not in " ".join(_set_cookies(response))
    # the transaction is spent: the genuine callback is refused too
    assert (await world.browser.get(callback)).status_code == 400


async def test_replayed_callback_is_refused(world: BffWorld) -> None:
    start = await world.browser.get("/bff/login")
    callback = await world.sign_in_at_idp(start.headers["location"])
    login_cookie = world.browser.cookies["__Host-tessera-bff-login"]
    assert (await world.browser.get(callback)).status_code == 303
    world.browser.cookies.set("__Host-tessera-bff-login", login_cookie, domain="bff.test")
    again = await world.browser.get(callback)
    assert again.status_code == 400 and "already completed" in again.text


async def test_callback_in_another_browser_is_refused(world: BffWorld) -> None:
    start = await world.browser.get("/bff/login")
    callback = await world.sign_in_at_idp(start.headers["location"])
    world.browser.cookies.clear()  # the victim's browser: no login cookie
    response = await world.browser.get(callback)
    assert response.status_code == 400 and "no login" in response.text


async def test_error_callback_and_open_redirect(world: BffWorld) -> None:
    start = await world.browser.get("/bff/login", params={"return_to": "//evil.example/x"})
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    denied = await world.browser.get("/bff/callback",
                                     params={"error": "access_denied", "state": state,
                                             "iss": world.settings.issuer})
    assert denied.status_code == 400 and "access_denied" in denied.text
    done = await world.login(return_to="https://evil.example/")
    assert done.status_code == 303 and done.headers["location"] == "/"


# session lifecycle -----------------------------------------------------------------------
async def test_access_token_is_refreshed_before_it_expires(world: BffWorld) -> None:
    await world.login()
    first = await _bearer(world)
    world.clock.advance(claims_of(first)["exp"] - world.clock.now() - 10)
    second = await _bearer(world)
    assert second != first and claims_of(second)["sid"] == claims_of(first)["sid"]
    assert await verifier_verdict(world.identity, second, API_AUDIENCE) is None


async def test_session_revoked_elsewhere_is_refused(world: BffWorld) -> None:
    await world.login()
    token = await _bearer(world)
    assert await world.identity.logout.end_session(claims_of(token)["sid"], actor="admin")
    calls = len(world.upstream.seen)
    assert (await world.api("GET", "/bff/api/orders/items")).status_code == 401
    assert (await world.api("GET", "/bff/session")).status_code == 401
    assert len(world.upstream.seen) == calls


async def test_unknown_route_traversal_and_large_body(world: BffWorld) -> None:
    await world.login()
    assert (await world.api("GET", "/bff/api/nope/x")).status_code == 404
    traversal = await world.api("GET", "/bff/api/orders/a/%2e%2e/%2e%2e/admin")
    assert traversal.status_code == 400
    big = await world.api("POST", "/bff/api/orders/items",
                          content=b"x" * (world.settings.max_body_bytes + 1))
    assert big.status_code == 413
    unauthenticated = await world.browser.get("/bff/api/orders/items", headers=CSRF)
    assert unauthenticated.status_code == 200  # same browser, still signed in


async def test_logout_without_session_is_harmless(world: BffWorld) -> None:
    out = await world.api("POST", "/bff/logout")
    assert out.status_code == 200 and out.json()["logout_url"] is None


# DPoP ------------------------------------------------------------------------------------
@pytest.fixture
async def dpop_world(identity: Identity, tessera: TesseraDriver,
                     clock: FixedClock) -> AsyncIterator[BffWorld]:
    built = await make_world(identity, tessera, clock, dpop=True)
    yield built
    await built.browser.aclose()
    await built.idp.aclose()


async def test_dpop_bound_tokens_carry_a_proof_upstream(dpop_world: BffWorld) -> None:
    world = dpop_world
    await world.login()
    response = await world.api("PUT", "/bff/api/orders/items/7?x=1")
    assert response.status_code == 200
    seen = world.upstream.seen[-1]
    scheme, token = seen["headers"]["authorization"].split(" ", 1)
    assert scheme == "DPoP"
    proof = check_proof(seen["headers"]["dpop"], method="PUT",
                        url="http://orders.internal/v1/items/7", now=world.clock.now(),
                        access_token=token)
    assert claims_of(token)["cnf"]["jkt"] == proof.jkt
    # a refreshed token stays bound to the same key
    world.clock.advance(claims_of(token)["exp"] - world.clock.now() - 5)
    await world.api("GET", "/bff/api/orders/items")
    renewed = world.upstream.seen[-1]["headers"]["authorization"].split(" ", 1)[1]
    assert renewed != token and claims_of(renewed)["cnf"]["jkt"] == proof.jkt


async def test_login_form_lets_the_browser_follow_to_the_registered_callback(
        world: BffWorld) -> None:
    """CSP ``form-action`` also governs the redirect after the form is posted: the login
    page names the client's redirect-URI origin (a real browser otherwise stops there;
    tests/system/test_bff_browser.py), and nothing else."""
    start = await world.browser.get("/bff/login")
    parts = urlsplit(start.headers["location"])
    page = await world.idp.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert f"form-action 'self' {BFF_URL};" in policy, policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy


async def test_dpop_nonce_demanded_by_the_token_endpoint_is_retried(
        tmp_path: Any, sqlite_store: Any, clock: FixedClock) -> None:
    """RFC 9449 §8: with ``dpop.require_nonce`` the first proof is answered
    ``use_dpop_nonce``; the BFF signs again with the nonce, at login and at refresh."""
    import httpx

    from tessera.identity.app import build_app
    from tests.conftest import make_identity, make_settings

    identity = await make_identity(make_settings(tmp_path, dpop={"require_nonce": True}),
                                   sqlite_store, clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                                 base_url=identity.settings.issuer) as http:
        world = await make_world(identity, TesseraDriver(identity, http), clock, dpop=True)
        try:
            done = await world.login()
            assert done.status_code == 303, done.text
            token = await _bearer(world)
            assert "jkt" in claims_of(token)["cnf"]
            world.clock.advance(claims_of(token)["exp"] - world.clock.now() - 5)
            renewed = await _bearer(world)
            assert renewed != token and claims_of(renewed)["cnf"] == claims_of(token)["cnf"]
        finally:
            await world.browser.aclose()
            await world.idp.aclose()
            await identity.audit.aclose()


async def test_identity_service_down_is_503_not_500(world: BffWorld) -> None:
    import httpx

    from tessera.bff import create_bff

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    app = create_bff(world.settings, clock=world.clock, vault=MemoryVault(),
                     identity_transport=httpx.MockTransport(down))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BFF_URL) as browser:
        start = await browser.get("/bff/login")
        assert start.status_code == 503 and "unavailable" in start.text
        callback = await browser.get("/bff/callback?code=x&state=y")
        assert callback.status_code == 400  # no login cookie: refused before any call


async def test_upstream_asking_for_a_dpop_nonce_gets_one_retry(dpop_world: BffWorld) -> None:
    from starlette.responses import JSONResponse

    world = dpop_world
    await world.login()
    world.upstream.answers.append(JSONResponse(
        {"error": "use_dpop_nonce"}, 401,
        headers={"www-authenticate": 'DPoP error="use_dpop_nonce"', "dpop-nonce": "n-42"}))
    response = await world.api("GET", "/bff/api/orders/items")
    assert response.status_code == 200 and "dpop-nonce" not in response.headers
    first, second = world.upstream.seen[-2:]
    assert check_proof(second["headers"]["dpop"], method="GET",
                       url="http://orders.internal/v1/items", now=world.clock.now(),
                       access_token=second["headers"]["authorization"].split(" ", 1)[1]
                       ).nonce == "n-42"
    assert first["headers"]["dpop"] != second["headers"]["dpop"]
    # a plain refusal is passed on once, not retried
    world.upstream.answers.append(JSONResponse({"error": "invalid_token"}, 401))
    calls = len(world.upstream.seen)
    assert (await world.api("GET", "/bff/api/orders/items")).status_code == 401
    assert len(world.upstream.seen) == calls + 1


async def test_idle_session_ends(world: BffWorld) -> None:
    await world.login()
    world.clock.advance(world.settings.session_idle_timeout - 60)
    assert (await world.api("GET", "/bff/session")).status_code == 200  # use renews it
    world.clock.advance(world.settings.session_idle_timeout - 60)
    assert (await world.api("GET", "/bff/session")).status_code == 200
    world.clock.advance(world.settings.session_idle_timeout + 1)
    assert (await world.api("GET", "/bff/session")).status_code == 401


async def test_the_journey_on_redis(identity: Identity, tessera: TesseraDriver,
                                    clock: FixedClock) -> None:
    """Sessions in Redis (what replicas share): sealed there, and gone after logout."""
    import uuid

    from redis.asyncio import Redis

    from tessera.bff import RedisVault
    from tests.conftest import REDIS_URL, require_service

    url = require_service(REDIS_URL, "redis")
    prefix = f"tessera:bff-e2e:{uuid.uuid4().hex}:"
    world = await make_world(identity, tessera, clock, vault=RedisVault(url, prefix=prefix))
    redis = Redis.from_url(url)
    try:
        await world.login()
        token = await _bearer(world)
        keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
        assert len(keys) == 1 and keys[0].decode().startswith(f"{prefix}session:")
        assert token.encode() not in (await redis.get(keys[0]) or b"")
        ttl = await redis.ttl(keys[0])
        assert 0 < ttl <= world.settings.session_idle_timeout
        assert (await world.api("POST", "/bff/logout")).status_code == 200
        assert [k async for k in redis.scan_iter(match=f"{prefix}*")] == []
        assert (await world.api("GET", "/bff/session")).status_code == 401
    finally:
        await redis.aclose()
        await world.vault.aclose()
        await world.browser.aclose()
        await world.idp.aclose()


async def test_garbage_never_gets_a_500(world: BffWorld) -> None:
    """Hostile or broken input at every route: a clear 4xx, never a 500 or a stack trace."""
    await world.login()
    cases: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/bff/callback?state=%C3%A9%00&code=" + "x" * 5000, {}),
        ("GET", "/bff/callback?state=a&state=b&code=c&code=d", {}),
        ("GET", "/bff/callback?error=" + "e" * 500, {}),
        ("GET", "/bff/login?return_to=/%0d%0aSet-Cookie:x=1", {}),
        ("GET", "/bff/login?return_to=" + "/a" * 3000, {}),
        ("GET", "/bff/session", {**CSRF, "origin": "not a url"}),
        ("GET", "/bff/session", {**CSRF, "origin": "https://[::1"}),
        ("POST", "/bff/api/orders/x", {**CSRF, "origin": BFF_URL, "content-length": "abc"}),
        ("GET", "/bff/api/orders/%00", {**CSRF, "origin": BFF_URL}),
        ("GET", "/bff/api/ORDERS/x", {**CSRF, "origin": BFF_URL}),
        ("PROPFIND", "/bff/api/orders/x", {**CSRF, "origin": BFF_URL}),
        ("GET", "/bff/logout", {**CSRF, "origin": BFF_URL}),
    ]
    for method, path, headers in cases:
        response = await world.browser.request(method, path, headers=headers)
        assert 300 <= response.status_code < 500, (method, path, response.status_code)
        assert "Traceback" not in response.text
    login = await world.browser.get("/bff/login?return_to=/%0d%0aSet-Cookie:x=1")
    assert login.status_code == 303
    assert "set-cookie: x" not in str(login.headers).lower()


async def test_callback_from_another_issuer_is_refused(world: BffWorld) -> None:
    """RFC 9207: the identity service names itself in the response (it advertises
    ``authorization_response_iss_parameter_supported``); a mixed-up one is refused."""
    start = await world.browser.get("/bff/login")
    callback = await world.sign_in_at_idp(start.headers["location"])
    query = parse_qs(urlsplit(callback).query)
    assert query["iss"] == [world.settings.issuer]
    for iss in ("https://evil.example", None):
        world.browser.cookies.clear()
        start = await world.browser.get("/bff/login")
        callback = await world.sign_in_at_idp(start.headers["location"])
        query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
        query.pop("iss")
        if iss:
            query["iss"] = iss
        response = await world.browser.get("/bff/callback", params=query)
        assert response.status_code == 400 and "issuer" in response.text


async def test_a_new_login_replaces_the_old_session(world: BffWorld) -> None:
    await world.login()
    old = world.browser.cookies["__Host-tessera-bff"]
    await world.login()
    new = world.browser.cookies["__Host-tessera-bff"]
    assert new != old
    world.browser.cookies.set("__Host-tessera-bff", old, domain="bff.test")
    assert (await world.api("GET", "/bff/session")).status_code == 401


async def test_every_answer_forbids_framing_and_sniffing(world: BffWorld) -> None:
    for response in (await world.browser.get("/healthz"),
                     await world.browser.get("/bff/login"),
                     await world.api("GET", "/bff/session")):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
        assert response.headers["x-content-type-options"] == "nosniff"


async def _fed_verifier(identity: Identity, audience: str = API_AUDIENCE) -> Any:
    """The verifier SDK's service with its state fed by hand from the published events
    (what its feed follower does), loaded and current."""
    import httpx
    from prometheus_client import CollectorRegistry

    from tessera.identity.app import build_app
    from tessera.verifier.service import VerifierService
    from tessera.verifier.settings import VerifierSettings

    service = VerifierService(
        VerifierSettings(issuer=identity.settings.issuer, audience=audience,
                         source="none", service_name="tessera-bff"),
        clock=identity.clock, transport=httpx.ASGITransport(app=build_app(identity)),
        registry=CollectorRegistry())
    service.state.confirm(identity.clock.now())
    return service


async def _feed(identity: Identity, service: Any, after: int) -> None:
    from tessera.bus import event_to_wire

    async with identity.store.unit_of_work(read_only=True) as uow:
        for event in await uow.revocations.since(after, limit=10_000):
            service.state.apply(event_to_wire(event))
    service.state.confirm(identity.clock.now())


@pytest.mark.parametrize("dpop", [False, True])
async def test_revocation_feed_ends_the_session_without_introspection(
        identity: Identity, tessera: TesseraDriver, clock: FixedClock, dpop: bool) -> None:
    service = await _fed_verifier(identity)
    world = await make_world(identity, tessera, clock, revocations=service,
                             revocation_feed=True, audience=API_AUDIENCE,
                             session_check_interval=300, dpop=dpop)
    try:
        await world.login()
        token = await _bearer(world)
        before = await last_seq(world.identity)
        assert await world.identity.logout.end_session(claims_of(token)["sid"])
        # not yet applied, and introspection is not asked within 300 s: still accepted
        assert (await world.api("GET", "/bff/session")).status_code == 200
        await _feed(world.identity, service, before)  # the event arrives
        assert (await world.api("GET", "/bff/session")).status_code == 401
    finally:
        await world.browser.aclose()
        await world.idp.aclose()


async def test_stale_revocation_feed_falls_back_to_introspection(
        identity: Identity, tessera: TesseraDriver, clock: FixedClock) -> None:
    service = await _fed_verifier(identity)
    world = await make_world(identity, tessera, clock, revocations=service,
                             revocation_feed=True, audience=API_AUDIENCE,
                             session_check_interval=0)
    try:
        await world.login()
        token = await _bearer(world)
        assert await world.identity.logout.end_session(claims_of(token)["sid"])
        world.clock.advance(service.settings.max_staleness + 1)  # no news: stale
        assert service.is_stale()
        assert (await world.api("GET", "/bff/session")).status_code == 401
    finally:
        await world.browser.aclose()
        await world.idp.aclose()


async def test_session_events_carry_hashes_never_tokens(
        world: BffWorld, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="tessera.audit"):
        await world.login()
        token = await _bearer(world)
        cookie = world.browser.cookies["__Host-tessera-bff"]
        await world.api("POST", "/bff/logout")
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.getMessage().startswith('{"event":"bff_session.')]
    assert [line["event"] for line in lines] == ["bff_session.created",
                                                 "bff_session.logged_out"]
    assert lines[0]["session_hash"] == lines[1]["session_hash"]
    text = caplog.text
    assert token not in text and cookie.split(".")[0] not in text


async def test_revocation_feed_stale_version_refreshes_wrong_audience_introspects(
        identity: Identity, tessera: TesseraDriver, clock: FixedClock) -> None:
    """A bumped session version (roles changed) is not a revocation: the BFF gets a fresh
    token. A state that cannot judge the token (here: the wrong audience configured) makes
    the BFF ask introspection instead of ending the session."""
    from tessera.application import admin

    service = await _fed_verifier(identity)
    world = await make_world(identity, tessera, clock, revocations=service,
                             revocation_feed=True, audience=API_AUDIENCE,
                             session_check_interval=300)
    try:
        await world.login()
        token = await _bearer(world)
        before = await last_seq(world.identity)
        await admin.bump_version(world.identity.admin, sid=claims_of(token)["sid"],
                                 reason="role removed", actor="test")
        await _feed(world.identity, service, before)
        renewed = await _bearer(world)
        assert renewed != token and claims_of(renewed)["sv"] > claims_of(token)["sv"]
        assert (await world.api("GET", "/bff/session")).status_code == 200

        other = await _fed_verifier(identity, audience="https://elsewhere.example")
        world.app.state.tessera_bff.revocations = other
        assert (await world.api("GET", "/bff/session")).status_code == 200  # introspected
    finally:
        await world.browser.aclose()
        await world.idp.aclose()
