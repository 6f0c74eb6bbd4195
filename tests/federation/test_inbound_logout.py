"""Inbound OpenID Connect Back-Channel Logout 1.0 and CAEP security events (RFC 8935
push) from a second Tessera instance acting as the upstream: a valid token revokes the
linked local session through the outbox (a verifier then rejects its tokens); each §2.6
check refuses a bad token with a 400 that names it, and nothing is revoked."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from tessera.application import admin
from tessera.core.users import User
from tessera.identity.federation.service import (
    BACKCHANNEL_LOGOUT_EVENT,
    CAEP_CREDENTIAL_CHANGE,
    CAEP_SESSION_REVOKED,
)
from tests.e2e.helpers import verifier_verdict
from tests.federation.conftest import Fed
from tests.federation.flows import (
    AUDIENCE,
    UPSTREAM_PASSWORD,
    add_tessera_upstream,
    sign_in_tessera,
    web_app,
)
from tests.tokens import claims_of

pytestmark = pytest.mark.slow


@dataclass
class Linked:
    fed: Fed
    second: Fed
    idp_id: str
    client_id: str
    """Tessera's client id at the upstream: the audience of its logout tokens."""
    tokens: dict[str, Any]
    upstream_sub: str
    upstream_sid: str

    @property
    def sid(self) -> str:
        return str(claims_of(self.tokens["access_token"])["sid"])

    def logout_claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.second.url, "aud": self.client_id, "iat": now, "exp": now + 120,
            "jti": uuid.uuid4().hex, "sub": self.upstream_sub, "sid": self.upstream_sid,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}
        for name, value in changes.items():
            if value is _DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def signed(self, claims: dict[str, Any], typ: str = "logout+jwt") -> str:
        """Signed with the upstream's own active key (as its logout tokens are)."""
        return self.second.identity.keys.ring.sign(claims, typ=typ)

    async def post_logout(self, token: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(
                f"{self.fed.url}/federation/{self.idp_id}/backchannel-logout",
                data={"logout_token": token})

    async def push(self, token: str, media: str = "application/secevent+jwt"
                   ) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(f"{self.fed.url}/federation/{self.idp_id}/ssf/push",
                                     content=token, headers={"content-type": media})

    async def session_active(self) -> bool:
        async with self.fed.identity.store.unit_of_work(read_only=True) as uow:
            session = await uow.sessions.get(self.sid)
        assert session is not None
        return session.active


_DROP = object()


@pytest.fixture
async def linked(fed: Fed, second: Fed) -> AsyncIterator[Linked]:
    idp_id = await add_tessera_upstream(fed, second)
    user: User = await admin.create_user(second.identity.admin, username="carol",
                                         password=UPSTREAM_PASSWORD)
    app = await web_app(fed.identity)
    async with httpx.AsyncClient(timeout=10) as browser:
        tokens = await sign_in_tessera(fed, app, browser, username="carol", idp_hint="partner")
    async with fed.identity.store.unit_of_work(read_only=True) as uow:
        provider = await uow.federation.provider_by_id(idp_id)
        sid = claims_of(tokens["access_token"])["sid"]
        upstream = await uow.federation.upstream_session(sid)
    assert provider is not None and upstream is not None
    assert upstream.subject == user.user_id and upstream.upstream_sid
    yield Linked(fed, second, idp_id, provider.client_id, tokens, user.user_id,
                 upstream.upstream_sid)


async def test_sign_in_through_a_second_tessera(linked: Linked) -> None:
    claims = claims_of(linked.tokens["id_token"])
    assert claims["name"] == "carol"  # preferred_username mapped to name
    assert claims["upstream_tenant"] == "default"
    assert await linked.session_active()


async def test_logout_token_by_sid_revokes_the_linked_session(linked: Linked) -> None:
    assert await verifier_verdict(linked.fed.identity, linked.tokens["access_token"],
                                  AUDIENCE) is None
    response = await linked.post_logout(linked.signed(linked.logout_claims(sub=_DROP)))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert not await linked.session_active()
    assert await verifier_verdict(linked.fed.identity, linked.tokens["access_token"],
                                  AUDIENCE) is not None


async def test_logout_token_by_sub_revokes_every_linked_session(linked: Linked) -> None:
    response = await linked.post_logout(linked.signed(linked.logout_claims(sid=_DROP)))
    assert response.status_code == 200, response.text
    assert not await linked.session_active()


def _rogue_rsa(claims: dict[str, Any]) -> str:
    key = RSAKey.generate_key(2048, parameters={"kid": "rogue"})
    return jwt.encode({"alg": "RS256", "kid": "rogue", "typ": "logout+jwt"}, claims, key)


def _hmac(claims: dict[str, Any]) -> str:
    key = OctKey.import_key(b"a" * 32)
    return jwt.encode({"alg": "HS256", "typ": "logout+jwt"}, claims, key)


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'logout+jwt'})}.{part(claims)}."


Mutation = Callable[[Linked], str]
BAD_TOKENS: dict[str, tuple[Mutation, str]] = {
    "signature by an unknown key": (lambda x: _rogue_rsa(x.logout_claims()), "key"),
    "hmac with a shared secret": (lambda x: _hmac(x.logout_claims()), "invalid"),
    "alg none": (lambda x: _unsigned(x.logout_claims()), "invalid"),
    "tampered payload": (lambda x: _tamper(x.signed(x.logout_claims())), "invalid"),
    "wrong iss": (lambda x: x.signed(x.logout_claims(iss="http://127.0.0.1:1")), "iss"),
    "wrong aud": (lambda x: x.signed(x.logout_claims(aud="someone-else")), "aud"),
    "no iat": (lambda x: x.signed(x.logout_claims(iat=_DROP)), "iat"),
    "iat too old": (lambda x: x.signed(x.logout_claims(iat=int(time.time()) - 3600)), "iat"),
    "iat in the future": (lambda x: x.signed(x.logout_claims(iat=int(time.time()) + 3600)),
                          "iat"),
    "expired": (lambda x: x.signed(x.logout_claims(exp=int(time.time()) - 600)), "exp"),
    "no events": (lambda x: x.signed(x.logout_claims(events=_DROP)), "events"),
    "wrong event": (lambda x: x.signed(x.logout_claims(
        events={CAEP_SESSION_REVOKED: {}})), "events"),
    "nonce present": (lambda x: x.signed(x.logout_claims(nonce="n")), "nonce"),
    "no jti": (lambda x: x.signed(x.logout_claims(jti=_DROP)), "jti"),
    "neither sub nor sid": (lambda x: x.signed(x.logout_claims(sub=_DROP, sid=_DROP)),
                            "neither"),
    "an ID token instead": (lambda x: x.signed(x.logout_claims(), typ="JWT"), "typ"),
    "not a JWT": (lambda _: "not-a-token", "JWS"),
}


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_bad_logout_tokens_are_refused(linked: Linked) -> None:
    """Every check of §2.6, one bad token each (one upstream and session for all: each
    refused token must leave the session active)."""
    for case, (make, named) in BAD_TOKENS.items():
        response = await linked.post_logout(make(linked))
        assert response.status_code == 400, (case, response.text)
        body = response.json()
        assert body["error"] == "invalid_request", case
        assert named.lower() in body["error_description"].lower(), (case, body)
        assert await linked.session_active(), f"{case}: a refused token revoked nothing"


async def test_a_replayed_logout_token_is_refused(linked: Linked) -> None:
    token = linked.signed(linked.logout_claims(sid="another-upstream-session"))
    assert (await linked.post_logout(token)).status_code == 200
    again = await linked.post_logout(token)
    assert again.status_code == 400
    assert "replay" in again.json()["error_description"]


async def test_missing_logout_token_and_unknown_provider(linked: Linked) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        missing = await client.post(
            f"{linked.fed.url}/federation/{linked.idp_id}/backchannel-logout", data={})
        unknown = await client.post(
            f"{linked.fed.url}/federation/idp_nope/backchannel-logout",
            data={"logout_token": linked.signed(linked.logout_claims())})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert unknown.status_code == 404 and unknown.json()["error"] == "invalid_request"


async def test_rotated_upstream_keys_are_refetched_once(linked: Linked) -> None:
    """The upstream rotates twice (its new active key was never published while we
    cached its JWKS): one refetch finds it. A key it never publishes: one refetch, then
    refused."""
    fetched: list[str] = []

    class Counting(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            fetched.append(request.url.path)
            return await super().handle_async_request(request)

    federation = linked.fed.identity.federation
    federation.transport = Counting()
    federation._clients.clear()  # a fresh client on the counting transport
    second = linked.second.identity
    assert (await linked.post_logout(linked.signed(
        linked.logout_claims(sid="warm-up")))).status_code == 200
    assert fetched.count("/jwks") == 1
    await second.key_manager.rotate(actor="test")
    await second.key_manager.rotate(actor="test")
    await second.reload_keys()
    response = await linked.post_logout(linked.signed(linked.logout_claims(sub=_DROP)))
    assert response.status_code == 200, response.text
    assert fetched.count("/jwks") == 2
    refused = await linked.post_logout(_rogue_rsa(linked.logout_claims()))
    assert refused.status_code == 400
    assert fetched.count("/jwks") == 3, "one refetch per unknown kid, then refuse"


def _set(linked: Linked, event: str, subject: dict[str, Any], **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": linked.second.url, "aud": linked.client_id, "iat": now,
                              "jti": uuid.uuid4().hex, "sub_id": subject,
                              "events": {event: {"event_timestamp": now}}}
    claims.update(changes)
    return linked.signed(claims, typ="secevent+jwt")


async def test_caep_session_revoked_push_revokes(linked: Linked) -> None:
    subject = {"format": "complex",
               "session": {"format": "opaque", "id": linked.upstream_sid}}
    response = await linked.push(_set(linked, CAEP_SESSION_REVOKED, subject))
    assert response.status_code == 202, response.text
    assert not await linked.session_active()
    assert await verifier_verdict(linked.fed.identity, linked.tokens["access_token"],
                                  AUDIENCE) is not None


async def test_caep_credential_change_push_revokes_the_users_sessions(linked: Linked) -> None:
    subject = {"format": "iss_sub", "iss": linked.second.url, "sub": linked.upstream_sub}
    response = await linked.push(_set(linked, CAEP_CREDENTIAL_CHANGE, subject))
    assert response.status_code == 202, response.text
    assert not await linked.session_active()


async def test_bad_security_events_are_refused(linked: Linked) -> None:
    subject = {"format": "iss_sub", "iss": linked.second.url, "sub": linked.upstream_sub}
    good = _set(linked, CAEP_SESSION_REVOKED, subject)
    wrong_type = await linked.push(good, media="application/json")
    assert wrong_type.status_code == 400 and wrong_type.json()["err"] == "invalid_request"
    wrong_aud = await linked.push(_set(linked, CAEP_SESSION_REVOKED, subject, aud="x"))
    assert wrong_aud.status_code == 400 and wrong_aud.json()["err"] == "invalid_audience"
    wrong_iss = await linked.push(_set(linked, CAEP_SESSION_REVOKED, subject,
                                       iss="http://127.0.0.1:1"))
    assert wrong_iss.status_code == 400 and wrong_iss.json()["err"] == "invalid_issuer"
    unknown_event = await linked.push(_set(linked, "https://example.com/other", subject))
    assert unknown_event.status_code == 400
    other_issuer_subject = await linked.push(_set(linked, CAEP_SESSION_REVOKED, {
        "format": "iss_sub", "iss": "https://elsewhere.example", "sub": linked.upstream_sub}))
    assert other_issuer_subject.status_code == 400
    assert await linked.session_active()
    assert (await linked.push(good)).status_code == 202
    replay = await linked.push(good)
    assert replay.status_code == 400 and "replay" in replay.json()["description"]


async def test_caep_events_are_polled(linked: Linked) -> None:
    """RFC 8936: Tessera polls the transmitter with a client-credentials token from the
    upstream, applies the SETs, acknowledges them (and reports a refused one) next time."""
    from dataclasses import replace

    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from tessera.identity.federation.poll import SsfPoller
    from tests.federation.test_upstream_failures import broken_upstream

    subject = {"format": "complex", "session": {"format": "opaque",
                                                "id": linked.upstream_sid}}
    revoking = _set(linked, CAEP_SESSION_REVOKED, subject)
    forged = _rogue_rsa(linked.logout_claims())
    queue = {"jti-good": revoking, "jti-forged": forged}
    requests: list[dict[str, Any]] = []

    async def transmitter(request: Request) -> Response:
        bearer = request.headers.get("authorization", "")
        claims = claims_of(bearer.removeprefix("Bearer "))
        assert claims["client_id"] == linked.client_id, "a token from the upstream"
        body = await request.json()
        requests.append(body)
        for jti in body.get("ack", []):
            queue.pop(jti, None)
        for jti in body.get("setErrs", {}):
            queue.pop(jti, None)
        if body.get("maxEvents") == 0:
            return JSONResponse({"sets": {}})
        return JSONResponse({"sets": dict(queue), "moreAvailable": False})

    async with broken_upstream(transmitter) as url:
        async with linked.fed.identity.store.unit_of_work(read_only=True) as uow:
            provider = await uow.federation.provider_by_id(linked.idp_id)
        assert provider is not None
        poller = SsfPoller(linked.fed.identity.federation, interval=1)
        applied = await poller.poll_once(replace(provider, ssf_poll_url=f"{url}/poll"))
    assert applied == 1
    assert not await linked.session_active()
    assert requests[-1]["ack"] == ["jti-good"]
    assert list(requests[-1]["setErrs"]) == ["jti-forged"]
    assert queue == {}
