"""Mutual TLS on the listener Tessera serves itself (``tessera serve --tls-cert --tls-key
--tls-client-ca``, i.e. ``httpserver`` with uvicorn's ssl options): the handshake verifies
the client certificate against the client CA, ``httpserver`` hands it to the app through
the ASGI TLS extension, and a forged forwarding header counts for nothing. A throwaway CA
made at test time, on loopback."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import quote

import httpx

from tessera.application import admin
from tessera.application.client_keys import ClientKeys
from tessera.httpserver import BoundedConfig
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.protocol.rfc8705 import certificate_thumbprint
from tessera.settings import ServerSettings
from tests.integration.test_httpserver import listening
from tests.mtls_ca import TestCA
from tests.tokens import claims_of


def client_context(ca_file: str, cert: tuple[str, str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


async def test_a_client_certificate_on_tessera_s_own_tls_listener(
        identity: Identity, tmp_path: Path) -> None:
    ca, other_ca = TestCA(), TestCA("Someone else's CA")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca.pem)
    server_cert, server_key = ca.issue("localhost", server=True).write(tmp_path, "server")
    orders = ca.issue("orders")
    orders_files = orders.write(tmp_path, "orders")
    stranger_files = other_ca.issue("orders").write(tmp_path, "stranger")
    client, _ = await admin.create_client(
        identity.admin, name="orders", grants=("client_credentials",), scope="api:read",
        audiences=("https://api.example",),
        keys=ClientKeys(auth_method="tls_client_auth", tls_subject_dn="CN=orders,O=Example"))
    config = BoundedConfig(build_app(identity), limits=ServerSettings(), host="127.0.0.1",
                           port=0, log_level="error", lifespan="off",
                           ssl_certfile=server_cert, ssl_keyfile=server_key,
                           ssl_ca_certs=str(ca_file), ssl_cert_reqs=int(ssl.CERT_OPTIONAL))
    form = {"grant_type": "client_credentials", "client_id": client.client_id}
    async with listening(config) as port:
        url = f"https://127.0.0.1:{port}/token"
        async with httpx.AsyncClient(verify=client_context(str(ca_file), orders_files)) as c:
            response = await c.post(url, data=form)
        assert response.status_code == 200, response.text
        claims = claims_of(response.json()["access_token"])
        assert claims["cnf"]["x5t#S256"] == certificate_thumbprint(orders.certificate)
        # no certificate: the connection works, the client is not authenticated; a header
        # naming the certificate is the client's own word and is dropped
        async with httpx.AsyncClient(verify=client_context(str(ca_file), None)) as c:
            bare = await c.post(url, data=form)
            forged = await c.post(url, data=form,
                                  headers={"x-ssl-client-cert": quote(orders.pem, safe="")})
        for answer in (bare, forged):
            assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
        # a certificate of another CA does not get through the handshake
        async with httpx.AsyncClient(verify=client_context(str(ca_file),
                                                           stranger_files)) as c:
            try:
                refused = await c.post(url, data=form)
            except httpx.TransportError:
                pass  # the server aborted the handshake
            else:
                assert refused.status_code == 401
