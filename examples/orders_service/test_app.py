"""The orders service's own tests: what a service embedding the SDK would write.

They need nothing but ``pip install 'tessera[verifier]'`` and pytest — no identity
service, no database: a small fake issuer signs real tokens (PyJWT, an ES256 key made
here) and answers the JWKS and the revocation feed (snapshot and server-sent events)
through ``httpx.MockTransport``. tests/packaging/test_install.py runs them in a clean
virtual environment with only that install; tests/system/test_example_service.py runs
the same app against a live identity service.

Plain functions that call ``asyncio.run``: no async test plugin needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm

from examples.orders_service.app import create_app
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings

ISSUER = "https://id.example"
AUDIENCE = "https://orders.example"
KID = "es-1"


class FakeIssuer:
    """Signs access tokens and serves ``/jwks`` and the ``/revocations`` feed."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._seq = 0
        self._listeners: list[asyncio.Queue[bytes]] = []

    def token(self, *, sub: str = "alice", sid: str | None = None,
              scope: str = "orders:read orders:write orders:admin") -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": [AUDIENCE], "sub": sub, "client_id": "web",
                  "scope": scope, "sid": sid or f"sid-{uuid.uuid4().hex[:8]}", "sv": 1,
                  "tid": "acme", "jti": uuid.uuid4().hex, "iat": now, "nbf": now,
                  "exp": now + 600, "auth_time": now - 5, "acr": "urn:tessera:acr:pwd",
                  "amr": ["pwd"]}
        return jwt.encode(claims, self._key, algorithm="ES256",
                          headers={"kid": KID, "typ": "at+jwt"})

    def revoke_session(self, sid: str) -> None:
        """Publish ``session.revoked`` on every open feed, with its watermark."""
        self._seq += 1
        now = time.time()
        event = {"seq": self._seq, "kind": "session.revoked", "key": sid, "at": now,
                 "expires_at": now + 600, "data": {}}
        frame = (f"id: {self._seq}\nevent: revocation\ndata: {json.dumps(event)}\n\n"
                 .encode() + self._heartbeat())
        for queue in self._listeners:
            queue.put_nowait(frame)

    def _heartbeat(self) -> bytes:
        body = {"seq": self._seq, "watermark": self._watermark()}
        return f"event: heartbeat\ndata: {json.dumps(body)}\n\n".encode()

    def _watermark(self) -> dict[str, Any]:
        return {"head": self._seq, "at": time.time(), "epoch": None}

    async def _events(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._listeners.append(queue)
        try:
            yield b": hello\n\n" + self._heartbeat()  # a comment line, then a heartbeat
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), 0.5)
                except TimeoutError:
                    yield self._heartbeat()
        finally:
            self._listeners.remove(queue)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/jwks":
            jwk = json.loads(ECAlgorithm.to_jwk(self._key.public_key()))
            jwk.update({"kid": KID, "alg": "ES256", "use": "sig"})
            return httpx.Response(200, json={"keys": [jwk]})
        if path == "/revocations/snapshot":
            return httpx.Response(200, json={"seq": self._seq, "events": [],
                                             "watermark": self._watermark()})
        if path == "/revocations":
            return httpx.Response(200, json={"events": [], "next": None,
                                             "watermark": self._watermark()})
        if path == "/revocations/events":
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  content=self._events())
        if path == "/revocations/acks":
            return httpx.Response(204)
        return httpx.Response(404)


def service_for(issuer: FakeIssuer | None, **overrides: Any) -> VerifierService:
    """The SDK as the app would build it from ``TESSERA_VERIFIER_*``; ``None``: the
    identity service is unreachable."""
    values: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "client_id": "orders",
                              "client_secret": "s3cret", "startup_wait": 2.0, **overrides}
    transport = (httpx.MockTransport(issuer.handle) if issuer is not None else
                 httpx.MockTransport(lambda _: httpx.Response(503)))
    return VerifierService(VerifierSettings(**values), transport=transport)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run (``ASGITransport`` does not run it)."""
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://orders.test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_orders_need_a_token_with_the_right_scope() -> None:
    async def scenario() -> None:
        issuer = FakeIssuer()
        async with running(create_app(service_for(issuer))) as client:
            assert (await client.get("/healthz")).json() == {"status": "ok"}
            assert (await client.get("/readyz")).json() == {"status": "ready"}

            anonymous = await client.get("/orders")
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"].startswith("Bearer")

            reader = issuer.token(scope="orders:read")
            refused = await client.post("/orders", json={"item": "tea"},
                                        headers=bearer(reader))
            assert refused.status_code == 403
            assert refused.json()["error"] == "insufficient_scope"

            forged = issuer.token()[:-4] + "AAAA"
            assert (await client.get("/orders", headers=bearer(forged))).status_code == 401

    run(scenario)


def test_a_user_sees_only_their_orders() -> None:
    async def scenario() -> None:
        issuer = FakeIssuer()
        async with running(create_app(service_for(issuer))) as client:
            alice, bob = issuer.token(sub="alice"), issuer.token(sub="bob")
            placed = await client.post("/orders", json={"item": "tea", "quantity": 2},
                                       headers=bearer(alice))
            assert placed.status_code == 201, placed.text
            order = placed.json()
            assert (order["owner"], order["tenant"], order["quantity"]) == \
                ("alice", "acme", 2)

            mine = await client.get("/orders", headers=bearer(alice))
            assert [o["order_id"] for o in mine.json()] == [order["order_id"]]
            assert (await client.get("/orders", headers=bearer(bob))).json() == []

            path = f"/orders/{order['order_id']}"
            assert (await client.get(path, headers=bearer(alice))).status_code == 200
            assert (await client.get(path, headers=bearer(bob))).status_code == 403
            missing = await client.get("/orders/o-999", headers=bearer(alice))
            assert missing.status_code == 404

            export = await client.get("/admin/export", headers=bearer(alice))
            assert export.status_code == 200
            assert export.json()["exported_by"] == "alice"

    run(scenario)


def test_a_revoked_session_is_refused_long_before_its_token_expires() -> None:
    async def scenario() -> None:
        issuer = FakeIssuer()
        service = service_for(issuer)
        async with running(create_app(service)) as client:
            token = issuer.token(sid="sid-revoked")
            other = issuer.token(sid="sid-kept")
            assert (await client.get("/orders", headers=bearer(token))).status_code == 200

            issuer.revoke_session("sid-revoked")
            deadline = time.monotonic() + 5
            while True:
                answer = await client.get("/orders", headers=bearer(token))
                if answer.status_code != 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
            assert answer.status_code == 401
            assert answer.json() == {"error": "invalid_token",
                                     "error_description": "The session was revoked."}
            assert (await client.get("/orders", headers=bearer(other))).status_code == 200

            metrics = (await client.get("/metrics")).text
            assert ('tessera_verifier_decisions_total{outcome="denied",'
                    'reason="session_revoked"}') in metrics
        assert service.registry.get_sample_value("tessera_verifier_revocation_cursor") == 1

    run(scenario)


def test_without_the_identity_service_every_route_fails_closed() -> None:
    async def scenario() -> None:
        issuer = FakeIssuer()
        service = service_for(None, startup_wait=0.1)
        async with running(create_app(service)) as client:
            for path in ("/orders", "/admin/export"):
                refused = await client.get(path, headers=bearer(issuer.token()))
                assert refused.status_code == 503
                assert refused.json()["error"] == "temporarily_unavailable"
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503
            assert set(not_ready.json()["missing"]) == {"jwks", "revocation_snapshot"}

    run(scenario)
