"""The gateway accepts reference tokens through introspection (cached, refused at once
by a revocation event) and refuses a certificate-bound token (RFC 8705 §3) unless nginx
forwards the certificate it is bound to (``$ssl_client_escaped_cert``)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives import serialization

from tessera.tls_scope import ClientCertificateScope
from tests.mtls_ca import TestCA
from tests.unit.gateway._support import IdentityStub, claims, gateway, mint

REFERENCE = "opaque-reference-token-value-0123456789abcdef"


def assert_refused(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert response.headers["www-authenticate"].startswith("Bearer")
    return body


class IntrospectingStub(IdentityStub):
    def __init__(self) -> None:
        super().__init__()
        self.introspections = 0
        self.answer = {"active": True, "token_type": "Bearer", **claims()}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/introspect":
            self.introspections += 1
            token = dict(p.split("=", 1) for p in request.content.decode().split("&"))["token"]
            return httpx.Response(200, json=self.answer if token == REFERENCE
                                  else {"active": False})
        return super().__call__(request)


async def test_reference_tokens_through_introspection_cached_and_revocable() -> None:
    stub = IntrospectingStub()
    async with gateway(stub=stub, reference_tokens=True) as gw:
        for _ in range(3):
            allowed = await gw.nginx("/orders/7", token=REFERENCE)
            assert allowed.status_code == 200, allowed.text
        assert stub.introspections == 1
        assert (await gw.nginx("/orders/7", token=mint())).status_code == 200  # JWT: local
        gw.revoke_session("sid-1")
        assert_refused(await gw.nginx("/orders/7", token=REFERENCE), 401, "invalid_token")
        assert stub.introspections == 1  # the event decided, not a new question
        assert_refused(await gw.nginx("/orders/7", token="made-up-reference-token-000000"),
                       401, "invalid_token")


async def test_a_certificate_bound_token_needs_its_certificate() -> None:
    ca = TestCA()
    mine, other = ca.issue("orders"), ca.issue("orders")
    der = mine.certificate.public_bytes(serialization.Encoding.DER)
    x5t = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    bound = mint(cnf={"x5t#S256": x5t})
    async with gateway() as gw:
        proxy = ClientCertificateScope(gw.app, trusted_proxies=["127.0.0.1"])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy),  # type: ignore[arg-type]
                                     base_url="http://gateway.test") as http:
            async def ask(cert: str | None) -> httpx.Response:
                headers = {"x-original-uri": "/orders/7", "x-original-method": "GET",
                           "host": "api.example", "authorization": f"Bearer {bound}"}
                if cert is not None:
                    headers["x-ssl-client-cert"] = quote(cert, safe="")
                return await http.get("/forward-auth", headers=headers)

            assert (await ask(mine.pem)).status_code == 200
            for cert in (None, other.pem):
                body = assert_refused(await ask(cert), 401, "invalid_token")
                assert "certificate" in body["error_description"]
        # without the proxy trust the header is not believed
        refused = await gw.nginx("/orders/7", token=bound,
                                 x_ssl_client_cert=quote(mine.pem, safe=""))
        assert refused.status_code == 401
