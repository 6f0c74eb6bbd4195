"""Reference (opaque) access tokens: per client, stored hashed, answered by introspection
(RFC 7662) and userinfo, and ended by everything that ends a JWT (DESIGN §2)."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from prometheus_client import CollectorRegistry

from tessera.application import admin
from tessera.application.client_keys import ClientKeys
from tessera.bus import event_to_wire
from tessera.core.clock import FixedClock
from tessera.core.secrets import token_hash
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.verifier import Denied, Reason
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings
from tests.conftest import ISSUER
from tests.e2e.helpers import client_token, refresh, revoke
from tests.support import REDIRECT, AppClient, TesseraDriver
from tests.tokens import claims_of


async def reference_client(tessera: TesseraDriver, **kw: Any) -> AppClient:
    client, secret = await admin.create_client(
        tessera.identity.admin, name="high-risk app",
        keys=ClientKeys(access_token_format="reference"),
        scope=kw.pop("scope", "api:read api:write"),
        audiences=kw.pop("audiences", ("https://api.example",)), **kw)
    return AppClient(client.client_id, secret)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_client_credentials_reference_token_is_opaque_and_introspectable(
        tessera: TesseraDriver, identity: Identity) -> None:
    service = await reference_client(tessera, grants=("client_credentials",))
    token = await client_token(tessera, service)
    assert "." not in token and len(token) >= 43  # 256 random bits, not a JWT
    resource_server = await tessera.client()
    body = await tessera.introspect(resource_server, token)
    assert body["active"] is True and body["token_type"] == "Bearer"
    assert body["sub"] == service.client_id and body["client_id"] == service.client_id
    assert body["aud"] == "https://api.example" and body["scope"] == "api:read api:write"
    assert isinstance(body["exp"], int) and body["iss"] == identity.settings.issuer
    # stored only as a hash
    async with identity.store.unit_of_work(read_only=True) as uow:
        stored = await uow.reference_tokens.get(token_hash(token))
        assert await uow.reference_tokens.get(token) is None
    assert stored is not None and stored.client_id == service.client_id
    assert token not in str(stored)


async def test_unknown_and_forged_references_are_inactive(tessera: TesseraDriver) -> None:
    service = await reference_client(tessera, grants=("client_credentials",))
    token = await client_token(tessera, service)
    resource_server = await tessera.client()
    for bad in (token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "x" * 43, "abc"):
        assert await tessera.introspect(resource_server, bad) == {"active": False}


async def test_code_flow_reference_token_userinfo_refresh_and_session_revocation(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await reference_client(tessera, grants=("authorization_code", "refresh_token"),
                                 redirect_uris=(REDIRECT,))
    user_id = await tessera.user()
    tokens = await tessera.login_tokens(app, scope="openid api:read")
    access = tokens["access_token"]
    assert "." not in access and "id_token" in tokens
    info = await tessera.http.get("/userinfo", headers=bearer(access))
    assert info.status_code == 200 and info.json()["sub"] == user_id
    body = await tessera.introspect(app, access)
    assert body["active"] is True and body["sub"] == user_id and body["sid"]
    refreshed = await refresh(tessera, app, tokens["refresh_token"])
    assert refreshed.status_code == 200
    second = refreshed.json()["access_token"]
    assert "." not in second and second != access
    # ending the user's sessions ends every reference issued in them
    await admin.revoke(identity.admin, user_id=user_id, reason="test", actor="test")
    for token in (access, second):
        assert await tessera.introspect(app, token) == {"active": False}
    refused = await tessera.http.get("/userinfo", headers=bearer(second))
    assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]


async def test_rfc7009_revocation_of_a_reference_token(tessera: TesseraDriver) -> None:
    service = await reference_client(tessera, grants=("client_credentials",))
    token = await client_token(tessera, service)
    other = await client_token(tessera, service)
    assert (await revoke(tessera, service, token)).status_code == 200
    assert await tessera.introspect(service, token) == {"active": False}
    assert (await tessera.introspect(service, other))["active"] is True
    # another client cannot revoke it
    stranger = await tessera.client()
    refused = await revoke(tessera, stranger, other)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


async def test_reference_tokens_are_tenant_scoped(tessera: TesseraDriver) -> None:
    service = await reference_client(tessera, grants=("client_credentials",))
    token = await client_token(tessera, service)
    elsewhere = await tessera.client(tenant="acme")
    assert await tessera.introspect(elsewhere, token) == {"active": False}


async def test_jwt_clients_are_unchanged(tessera: TesseraDriver) -> None:
    service = await tessera.client()
    assert (await client_token(tessera, service)).count(".") == 2


async def test_invalid_format_is_refused_at_registration(tessera: TesseraDriver) -> None:
    try:
        await admin.create_client(tessera.identity.admin, name="x", grants=("client_credentials",),
                                  keys=ClientKeys(access_token_format="opaque"))
    except admin.AdminError as exc:
        assert "jwt or reference" in str(exc)
    else:
        raise AssertionError("an unknown access token format was accepted")


class CountingTransport(httpx.AsyncBaseTransport):
    """The identity app over ASGI, counting introspection calls."""

    def __init__(self, identity: Identity) -> None:
        self._inner = httpx.ASGITransport(app=build_app(identity))
        self.introspections = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/introspect":
            self.introspections += 1
        return await self._inner.handle_async_request(request)


async def apply_published(identity: Identity, service: VerifierService) -> None:
    """What the bus follower does: apply every published revocation event."""
    async with identity.store.unit_of_work(read_only=True) as uow:
        published = await uow.revocations.since(0, limit=100_000)
    for event in published:
        service.state.apply(event_to_wire(event))
    service.state.confirm(identity.clock.now())


async def test_verifier_sdk_accepts_references_with_a_cache_the_stream_invalidates(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await reference_client(tessera, grants=("authorization_code", "refresh_token"),
                                 redirect_uris=(REDIRECT,))
    user_id = await tessera.user()
    token = (await tessera.login_tokens(app, scope="openid api:read"))["access_token"]
    jwt_app = await tessera.web_client()
    jwt_token = (await tessera.login_tokens(jwt_app, scope="openid api:read"))["access_token"]
    caller = await tessera.client()  # the service's own client: introspects
    transport = CountingTransport(identity)
    service = VerifierService(VerifierSettings(
        issuer=ISSUER, audience="https://api.example", source="none",
        client_id=caller.client_id, client_secret=caller.secret, reference_tokens=True),
        clock=identity.clock, transport=transport, registry=CollectorRegistry())
    service.state.confirm(identity.clock.now())
    try:
        accepted = await service.check(token, scopes=("api:read",))
        assert accepted.sub == user_id and accepted.sid and transport.introspections == 1
        again = await service.check(token, scopes=("api:read",))
        assert again.jti == accepted.jti and transport.introspections == 1  # cached
        with pytest.raises(Denied) as scope_denied:
            await service.check(token, scopes=("api:write",))
        assert scope_denied.value.reason is Reason.INSUFFICIENT_SCOPE
        assert (await service.check(jwt_token)).sub == user_id  # JWTs stay local
        assert transport.introspections == 1
        # the session ends: the stream's event refuses the cached reference at once,
        # without asking the issuer, exactly like the JWT of the same user
        await admin.revoke(identity.admin, user_id=user_id, reason="test", actor="test")
        await apply_published(identity, service)
        for revoked in (token, jwt_token):
            with pytest.raises(Denied) as denied:
                await service.check(revoked)
            assert denied.value.status == 401
        assert transport.introspections == 1
        # unknown references: refused, and the issuer asked once, not per request
        for _ in range(3):
            with pytest.raises(Denied) as unknown:
                await service.check("made-up-reference-token-value-0123456789abc")
            assert unknown.value.reason is Reason.TOKEN_REVOKED
        assert transport.introspections == 2
    finally:
        await service.aclose()


async def test_verifier_sdk_asks_again_when_its_revocation_state_is_stale(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    service_app = await reference_client(tessera, grants=("client_credentials",))
    token = await client_token(tessera, service_app)
    caller = await tessera.client()
    transport = CountingTransport(identity)
    service = VerifierService(VerifierSettings(
        issuer=ISSUER, audience="https://api.example", source="none",
        client_id=caller.client_id, client_secret=caller.secret, reference_tokens=True),
        clock=clock, transport=transport, registry=CollectorRegistry())
    service.state.confirm(clock.now())
    try:
        await service.check(token)
        assert transport.introspections == 1
        # revoked at the issuer, but the event never reached this verifier ...
        assert (await revoke(tessera, service_app, token)).status_code == 200
        clock.advance(45)  # ... whose state is now past the 30 s bound
        with pytest.raises(Denied) as denied:
            await service.check(token)
        assert denied.value.reason is Reason.TOKEN_REVOKED and transport.introspections == 2
    finally:
        await service.aclose()


async def test_rfc9701_jwt_introspection_response(tessera: TesseraDriver,
                                                  identity: Identity) -> None:
    service = await reference_client(tessera, grants=("client_credentials",))
    token = await client_token(tessera, service)
    caller = await tessera.client()
    response = await tessera.http.post(
        "/introspect", data={"token": token}, auth=caller.auth,  # type: ignore[arg-type]
        headers={"accept": "application/token-introspection+jwt"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/token-introspection+jwt"
    assert response.headers["cache-control"] == "no-store"
    keys = jwt.PyJWKSet.from_dict((await tessera.http.get("/jwks")).json())
    header = jwt.get_unverified_header(response.text)
    assert header["typ"] == "token-introspection+jwt"
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    claims = jwt.decode(response.text, key=key, algorithms=[header["alg"]],
                        audience=caller.client_id, issuer=ISSUER)
    answer = claims["token_introspection"]
    assert answer["active"] is True and answer["client_id"] == service.client_id
    # inactive: still a signed answer, saying only that
    response = await tessera.http.post(
        "/introspect", data={"token": "nope"}, auth=caller.auth,  # type: ignore[arg-type]
        headers={"accept": "application/token-introspection+jwt"})
    assert claims_of(response.text)[
        "token_introspection"] == {"active": False}
    # plain JSON stays the default
    plain = await tessera.introspect(caller, token)
    assert plain["active"] is True


async def test_a_reference_token_can_be_exchanged(tessera: TesseraDriver) -> None:
    app = await reference_client(tessera, grants=("authorization_code",),
                                 redirect_uris=(REDIRECT,))
    await tessera.user()
    subject = (await tessera.login_tokens(app, scope="openid api:read"))["access_token"]
    gateway = await tessera.client(
        grants=("urn:ietf:params:oauth:grant-type:token-exchange",), scope="api:read",
        audiences=("https://orders.internal",), subject_audiences=("https://api.example",))
    response = await tessera.token(
        gateway, grant_type="urn:ietf:params:oauth:grant-type:token-exchange",
        subject_token=subject, subject_token_type="urn:ietf:params:oauth:token-type:access_token",
        audience="https://orders.internal")
    assert response.status_code == 200, response.text
    assert response.json()["access_token"].count(".") == 2  # the gateway's own format: JWT
