"""Mutual-TLS client authentication and certificate-bound access tokens (RFC 8705), with
the certificate forwarded by a trusted TLS-terminating proxy (nginx
``$ssl_client_escaped_cert``) — the listener Tessera serves itself is in
tests/integration/test_mtls_listener.py. A throwaway CA is made per test module."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from jwt.algorithms import ECAlgorithm
from prometheus_client import CollectorRegistry

from tessera.application import admin
from tessera.application.client_keys import ClientKeys
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.protocol.rfc8705 import certificate_thumbprint
from tessera.tls_scope import ClientCertificateScope
from tessera.verifier import Denied, Reason
from tessera.verifier.dpop import Presentation
from tessera.verifier.service import VerifierService
from tessera.verifier.settings import VerifierSettings
from tests.conftest import ISSUER
from tests.mtls_ca import Issued, TestCA
from tests.tokens import claims_of

HEADER = "x-ssl-client-cert"
CA = TestCA()


@pytest.fixture
async def proxied(identity: Identity) -> AsyncIterator[httpx.AsyncClient]:
    """The identity app behind a trusted proxy at 127.0.0.1 (httpx's ASGI peer)."""
    app = ClientCertificateScope(build_app(identity), trusted_proxies=["127.0.0.1"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                 base_url=ISSUER) as client:
        yield client


def with_cert(cert: Issued | None) -> dict[str, str]:
    return {HEADER: quote(cert.pem, safe="")} if cert is not None else {}


async def mtls_client(identity: Identity, **keys: str) -> str:
    client, secret = await admin.create_client(
        identity.admin, name="orders", grants=("client_credentials",), scope="api:read",
        audiences=("https://api.example",), keys=ClientKeys(**keys))
    assert secret is None
    return client.client_id


async def token(http: httpx.AsyncClient, client_id: str, cert: Issued | None) -> httpx.Response:
    return await http.post("/token", data={"grant_type": "client_credentials",
                                           "client_id": client_id}, headers=with_cert(cert))


def refused(response: httpx.Response) -> bool:
    return response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_tls_client_auth_issues_a_certificate_bound_token(
        identity: Identity, proxied: httpx.AsyncClient) -> None:
    client_id = await mtls_client(identity, auth_method="tls_client_auth",
                                  tls_subject_dn="CN=orders,O=Example")
    cert = CA.issue("orders")
    response = await token(proxied, client_id, cert)
    assert response.status_code == 200, response.text
    claims = claims_of(response.json()["access_token"])
    assert claims["cnf"] == {"x5t#S256": certificate_thumbprint(cert.certificate)}
    assert response.json()["token_type"] == "Bearer"
    # introspection shows the binding to a resource server (RFC 8705 §3.2)
    rs, secret = await admin.create_client(identity.admin, name="rs",
                                           grants=("client_credentials",))
    body = (await proxied.post("/introspect", data={"token": response.json()["access_token"]},
                               auth=(rs.client_id, str(secret)))).json()
    assert body["active"] is True and body["cnf"] == claims["cnf"]
    assert body["token_type"] == "Bearer"


async def test_tls_client_auth_refusals(identity: Identity, proxied: httpx.AsyncClient) -> None:
    client_id = await mtls_client(identity, auth_method="tls_client_auth",
                                  tls_subject_dn="CN=orders,O=Example")
    assert refused(await token(proxied, client_id, None))  # no certificate
    assert refused(await token(proxied, client_id, CA.issue("billing")))  # another subject
    assert refused(await token(proxied, client_id, CA.issue("orders", org="Evil")))
    garbage = await proxied.post("/token", data={"grant_type": "client_credentials",
                                                 "client_id": client_id},
                                 headers={HEADER: "-----BEGIN CERTIFICATE-----%0Azz"})
    assert refused(garbage)


async def test_a_forwarded_certificate_from_an_untrusted_peer_is_ignored(
        identity: Identity, http: httpx.AsyncClient) -> None:
    """``http`` is the app without the proxy trust: a client that sends the header itself
    names no certificate (and the wrapper strips it everywhere else too)."""
    client_id = await mtls_client(identity, auth_method="tls_client_auth",
                                  tls_subject_dn="CN=orders,O=Example")
    direct = ClientCertificateScope(build_app(identity), trusted_proxies=["10.0.0.9"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=direct),  # type: ignore[arg-type]
                                 base_url=ISSUER) as client:
        assert refused(await token(client, client_id, CA.issue("orders")))
    assert refused(await token(http, client_id, CA.issue("orders")))


async def test_self_signed_tls_client_auth(identity: Identity,
                                           proxied: httpx.AsyncClient) -> None:
    mine, other = TestCA.self_signed("orders"), TestCA.self_signed("orders")
    jwk = json.loads(ECAlgorithm.to_jwk(mine.key.public_key())) | {"kid": "cert-1"}
    client_id = await mtls_client(identity, auth_method="self_signed_tls_client_auth",
                                  jwks=json.dumps({"keys": [jwk]}))
    assert (await token(proxied, client_id, mine)).status_code == 200
    assert refused(await token(proxied, client_id, other))  # same name, another key


async def test_registration_and_discovery(identity: Identity,
                                          proxied: httpx.AsyncClient) -> None:
    for keys in (ClientKeys(auth_method="tls_client_auth"),
                 ClientKeys(auth_method="tls_client_auth", tls_subject_dn="not a dn=,=")):
        with pytest.raises(admin.AdminError):
            await admin.create_client(identity.admin, name="x", grants=("client_credentials",),
                                      keys=keys)
    metadata = (await proxied.get("/.well-known/oauth-authorization-server")).json()
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(
        metadata["token_endpoint_auth_methods_supported"])
    assert metadata["tls_client_certificate_bound_access_tokens"] is True
    assert metadata["mtls_endpoint_aliases"]["token_endpoint"] == f"{ISSUER}/token"


async def test_the_verifier_sdk_checks_the_certificate_binding(
        identity: Identity, proxied: httpx.AsyncClient) -> None:
    client_id = await mtls_client(identity, auth_method="tls_client_auth",
                                  tls_subject_dn="CN=orders,O=Example")
    cert = CA.issue("orders")
    bound = (await token(proxied, client_id, cert)).json()["access_token"]
    service = VerifierService(VerifierSettings(
        issuer=ISSUER, audience="https://api.example", source="none"),
        clock=identity.clock, transport=httpx.ASGITransport(app=build_app(identity)),
        registry=CollectorRegistry())
    service.state.confirm(identity.clock.now())
    try:
        accepted = await service.check(bound, presentation=Presentation(client_cert=cert.pem))
        assert accepted.client_id == client_id
        for presented in (None, CA.issue("orders").pem):  # stolen token, no or other cert
            with pytest.raises(Denied) as denied:
                await service.check(bound, presentation=Presentation(client_cert=presented))
            assert denied.value.reason is Reason.CERTIFICATE_BINDING
            assert denied.value.status == 401 and denied.value.error == "invalid_token"
    finally:
        await service.aclose()
