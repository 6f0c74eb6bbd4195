"""RFC 8705 §3 in the SDK's ASGI middleware: a certificate-bound token (``cnf.x5t#S256``)
reaches the app only on a request whose ASGI TLS extension names that certificate (the
service's own TLS listener, or ``ClientCertificateScope`` behind a trusted proxy)."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from tessera.protocol.rfc8705 import certificate_thumbprint
from tessera.tls_scope import ClientCertificateScope
from tessera.verifier.service import VerifierService
from tests.mtls_ca import TestCA

from ._services import bearer
from ._support import Minter
from .test_asgi import build

CA = TestCA()
MINE, OTHER = CA.issue("orders"), CA.issue("orders")


async def ask(service: VerifierService, token: str, cert: str | None,
              *, trusted: bool = True) -> httpx.Response:
    app = ClientCertificateScope(build(service),
                                 trusted_proxies=["127.0.0.1"] if trusted else [])
    headers = bearer(token)
    if cert is not None:
        headers["x-ssl-client-cert"] = quote(cert, safe="")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                                 base_url="http://orders.test") as client:
        return await client.get("/anything", headers=headers)


async def test_a_certificate_bound_token_needs_its_certificate(
        service: VerifierService, minter: Minter) -> None:
    bound = minter.mint(cnf={"x5t#S256": certificate_thumbprint(MINE.certificate)})
    assert (await ask(service, bound, MINE.pem)).status_code == 200
    for cert, trusted in ((None, True), (OTHER.pem, True), (MINE.pem, False)):
        refused = await ask(service, bound, cert, trusted=trusted)
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
        assert "certificate" in refused.json()["error_description"]
    # an unbound token does not care
    assert (await ask(service, minter.mint(), None)).status_code == 200
    assert (await ask(service, minter.mint(), OTHER.pem)).status_code == 200
