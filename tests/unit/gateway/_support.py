"""Gateway test helpers: a local issuer (Ed25519 keys generated here), an identity-service
stub on ``httpx.MockTransport`` (JWKS and the RFC 8693 token endpoint) and the gateway app
wired to both on a fixed clock, without a revocation feed."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from tessera.core.clock import FixedClock
from tessera.gateway import Authorizer, GatewaySettings, create_gateway, parse_policy
from tessera.verifier.settings import VerifierSettings
from tests.tokens import DROP, access_token_claims, changed

ISSUER = "https://id.tessera.test"
AUDIENCE = "https://api.example"
DOWNSTREAM = "https://orders.internal"
NOW = 1_800_000_000.0
CLIENT_ID = "gateway"
CLIENT_SECRET = "gateway-secret-value"
PWD = "urn:tessera:acr:pwd"
MFA = "urn:tessera:acr:mfa"

_KEY = ed25519.Ed25519PrivateKey.generate()

POLICY: dict[str, Any] = {
    "acr_levels": [PWD, MFA],
    "routes": [
        {"match": {"path": "/healthz"}, "public": True},
        {"match": {"host": "api.example", "path": "/orders/**", "methods": ["GET"]},
         "audience": AUDIENCE, "scopes": ["orders:read"]},
        {"match": {"host": "api.example", "path": "/orders/**", "methods": ["POST"]},
         "audience": AUDIENCE, "scopes": ["orders:write"], "acr": MFA, "max_age": 600},
        {"match": {"host": "api.example", "path": "/admin/**"}, "audience": AUDIENCE,
         "strict": True},
        {"match": {"host": "api.example", "path": "/downstream/*"}, "audience": AUDIENCE,
         "exchange_to": DOWNSTREAM, "exchange_scope": "orders:read"},
    ],
}


def claims(**overrides: Any) -> dict[str, Any]:
    """``tests.tokens.access_token_claims`` for the gateway's routes (client ``web-app``,
    no ``nbf``); an override of ``None`` removes the claim."""
    return changed(access_token_claims(issuer=ISSUER, audience=AUDIENCE, now=NOW,
                                       client_id="web-app", acr=PWD, nbf=DROP),
                   overrides, drop=None)


def mint(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), _KEY, algorithm="EdDSA",
                      headers={"kid": "ed-1", "typ": "at+jwt"})


def jwks() -> dict[str, Any]:
    jwk = json.loads(OKPAlgorithm.to_jwk(_KEY.public_key()))
    jwk.update({"kid": "ed-1", "alg": "EdDSA", "use": "sig"})
    return {"keys": [jwk]}


@dataclass
class IdentityStub:
    """Answers ``/jwks`` and ``/token`` (token exchange). ``exchange_answer`` may be an
    ``httpx.Response`` or an exception to raise instead of a fresh token."""

    exchanges: list[dict[str, str]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    exchange_answer: httpx.Response | Exception | None = None
    expires_in: int = 120
    jwks_down: bool = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":
            if self.jwks_down:
                raise httpx.ConnectError("down")
            return httpx.Response(200, json=jwks())
        if request.url.path == "/token" and request.method == "POST":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.exchanges.append(form)
            self.authorizations.append(request.headers.get("authorization"))
            answer = self.exchange_answer
            if isinstance(answer, Exception):
                raise answer
            if answer is not None:
                return answer
            token = f"exchanged-{len(self.exchanges)}"
            return httpx.Response(200, json={
                "access_token": token, "token_type": "Bearer", "expires_in": self.expires_in,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"})
        return httpx.Response(404)


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class Gateway:
    app: Starlette
    stub: IdentityStub
    clock: FixedClock
    http: httpx.AsyncClient

    @property
    def authorizer(self) -> Authorizer:
        authorizer: Authorizer = self.app.state.tessera_gateway
        return authorizer

    def fresh(self) -> None:
        """The state holds every event committed until now (it vouches for itself)."""
        self.authorizer.service.state.confirm(self.clock.now())

    def revoke_session(self, sid: str = "sid-1", seq: int = 1) -> None:
        self.authorizer.service.state.apply(
            {"seq": seq, "kind": "session.revoked", "key": sid, "at": NOW,
             "expires_at": NOW + 600}, now=self.clock.now())

    async def nginx(self, uri: str, *, token: str | None = None, method: str = "GET",
                    host: str = "api.example", **headers: str) -> httpx.Response:
        sent = {"x-original-uri": uri, "x-original-method": method, "host": host,
                **{k.replace("_", "-"): v for k, v in headers.items()}}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        return await self.http.get("/forward-auth", headers=sent)

    async def traefik(self, uri: str, *, token: str | None = None, method: str = "GET",
                      host: str = "api.example", **headers: str) -> httpx.Response:
        sent = {"x-forwarded-uri": uri, "x-forwarded-method": method,
                "x-forwarded-host": host, "x-forwarded-proto": "https",
                **{k.replace("_", "-"): v for k, v in headers.items()}}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        return await self.http.get("/forward-auth", headers=sent)

    async def envoy(self, path: str, *, token: str | None = None, method: str = "GET",
                    host: str = "api.example", **headers: str) -> httpx.Response:
        sent = {"host": host, **{k.replace("_", "-"): v for k, v in headers.items()}}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        return await self.http.request(method, "/ext-authz" + path, headers=sent)


@contextlib.asynccontextmanager
async def gateway(policy: dict[str, Any] | None = None, *, clock: FixedClock | None = None,
                  stub: IdentityStub | None = None, **settings: Any
                  ) -> AsyncIterator[Gateway]:
    """The gateway app with its lifespan run (no feed: ``source`` is ``none``)."""
    stub = stub if stub is not None else IdentityStub()
    clock = clock if clock is not None else FixedClock(NOW)
    values: dict[str, Any] = {"issuer": ISSUER, "audience": "tessera-gateway",
                              "source": "none", "client_id": CLIENT_ID,
                              "client_secret": CLIENT_SECRET, "startup_wait": 0, **settings}
    app = create_gateway(parse_policy(policy if policy is not None else POLICY),
                         VerifierSettings(**values), GatewaySettings(), clock=clock,
                         transport=httpx.MockTransport(stub), registry=CollectorRegistry())
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as http:
        gw = Gateway(app, stub, clock, http)
        gw.fresh()  # a state fed by hand: loaded and current unless a test says not
        yield gw
