"""Mutual TLS with nginx in front (RFC 8705): nginx terminates TLS, verifies the client
certificate against the client CA and forwards it as ``$ssl_client_escaped_cert``; Tessera
believes that header from nginx's address only (``server.client_cert_proxies``). A
throwaway CA made at test time, everything on loopback."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

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
from tests.system._nginx import ensure_nginx
from tests.system._procs import base_env, free_port, spawn
from tests.tokens import claims_of

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {prefix}/server.crt;
        ssl_certificate_key {prefix}/server.key;
        ssl_client_certificate {prefix}/ca.pem;
        ssl_verify_client optional;
        location / {{
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
            proxy_set_header Host $host;
            proxy_pass http://127.0.0.1:{upstream};
        }}
    }}
}}
"""


def context(ca_file: Path, cert: tuple[str, str] | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


async def test_tls_client_auth_through_nginx(identity: Identity, tmp_path: Path) -> None:
    binary = ensure_nginx()
    prefix = tmp_path / "nginx"
    for sub in ("logs", "temp"):
        (prefix / sub).mkdir(parents=True)
    ca = TestCA()
    (prefix / "ca.pem").write_text(ca.pem)
    ca.issue("localhost", server=True).write(prefix, "server")
    orders = ca.issue("orders")
    orders_files = orders.write(tmp_path, "orders")
    client, _ = await admin.create_client(
        identity.admin, name="orders", grants=("client_credentials",), scope="api:read",
        audiences=("https://api.example",),
        keys=ClientKeys(auth_method="tls_client_auth", tls_subject_dn="CN=orders,O=Example"))
    config = BoundedConfig(build_app(identity),
                           limits=ServerSettings(client_cert_proxies=["127.0.0.1"]),
                           host="127.0.0.1", port=0, log_level="error", lifespan="off")
    async with listening(config) as upstream:
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, upstream=upstream))
        proc = await spawn("nginx", [binary, "-p", str(prefix), "-c", str(conf),
                                     "-e", str(prefix / "logs/error.log")],
                           env=base_env(), cwd=prefix, log=prefix / "nginx.out")
        url = f"https://127.0.0.1:{port}/token"
        form = {"grant_type": "client_credentials", "client_id": client.client_id}
        try:
            async with httpx.AsyncClient(verify=context(prefix / "ca.pem", orders_files)) as c:
                deadline = time.monotonic() + 15
                while True:
                    try:
                        response = await c.post(url, data=form)
                        break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, (prefix / "nginx.out").read_text()
                        await asyncio.sleep(0.1)
            assert response.status_code == 200, response.text
            claims = claims_of(response.json()["access_token"])
            assert claims["cnf"]["x5t#S256"] == certificate_thumbprint(orders.certificate)
            # no certificate, even with the header sent by the client itself: nginx
            # replaces it with its (empty) variable, and Tessera names no certificate
            async with httpx.AsyncClient(verify=context(prefix / "ca.pem", None)) as c:
                forged = await c.post(url, data=form, headers={
                    "x-ssl-client-cert": "-----BEGIN%20CERTIFICATE-----"})
            assert forged.status_code == 401 and forged.json()["error"] == "invalid_client"
        finally:
            await proc.kill()
