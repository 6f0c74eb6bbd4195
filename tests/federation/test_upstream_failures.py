"""An upstream that is down, slow or answering nonsense: the user gets a clear page (502,
never a 500), within the bounded timeout, with a metric and an audit event; nothing is
stored. The broken upstreams are real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tessera.identity.federation import admin as idps
from tessera.observability import events
from tests.conftest import METRICS_AUTH
from tests.e2e.helpers import audit_rows
from tests.federation.conftest import Fed, free_port
from tests.federation.flows import authorize_url, web_app
from tests.support import pkce_pair

Handler = Callable[[Request], Awaitable[Response]]


@contextlib.asynccontextmanager
async def broken_upstream(handler: Handler) -> AsyncIterator[str]:
    port = free_port()
    app = Starlette(routes=[Route("/{path:path}", handler, methods=["GET", "POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 5)


async def _sign_in_page(fed: Fed, issuer: str) -> httpx.Response:
    await idps.add_provider(fed.identity, name="broken", issuer=issuer, client_id="tessera",
                            client_secret="s3cret")
    app = await web_app(fed.identity)
    _, challenge = pkce_pair()
    async with httpx.AsyncClient(timeout=30, follow_redirects=True) as browser:
        return await browser.get(authorize_url(fed, app, challenge, idp_hint="broken"))


async def _failures(fed: Fed, reason: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{fed.url}/metrics", headers=METRICS_AUTH)).text
    for line in text.splitlines():
        if line.startswith(f'tessera_federation_upstream_failures_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


async def _users(fed: Fed) -> int:
    async with fed.identity.store.unit_of_work(read_only=True) as uow:
        return len(await uow.users.search())


async def test_upstream_down(fed: Fed) -> None:
    page = await _sign_in_page(fed, f"http://127.0.0.1:{free_port()}")  # nothing listens
    assert page.status_code == 502
    assert "not responding" in page.text
    assert await _failures(fed, "unavailable") == 1
    [row] = await audit_rows(fed.identity, events.FEDERATION_UPSTREAM_FAILED)
    assert row.fields["idp"] == "broken" and row.fields["reason"] == "unavailable"
    assert await _users(fed) == 0


async def test_upstream_slow_is_cut_at_the_timeout(fed: Fed) -> None:
    async def slow(_: Request) -> Response:
        await asyncio.sleep(30)
        return JSONResponse({})

    fed.identity.federation._timeout = 0.5  # federation.timeout, shortened for the test
    async with broken_upstream(slow) as issuer:
        started = time.monotonic()
        page = await _sign_in_page(fed, issuer)
        took = time.monotonic() - started
    assert page.status_code == 502 and "not responding" in page.text
    assert took < 5, f"the timeout bounds the wait ({took:.1f}s)"
    assert await _failures(fed, "unavailable") == 1


@pytest.mark.parametrize("answer", ["server error", "not json", "another issuer",
                                    "no endpoints"])
async def test_malformed_upstream_answers_are_refused(fed: Fed, answer: str) -> None:
    issuer_box: list[str] = []

    async def handler(request: Request) -> Response:
        if answer == "server error":
            return PlainTextResponse("boom", 500)
        if answer == "not json":
            return PlainTextResponse("<html>hello</html>")
        if answer == "another issuer":
            return JSONResponse({"issuer": "https://evil.example",
                                 "authorization_endpoint": "https://evil.example/a",
                                 "token_endpoint": "https://evil.example/t",
                                 "jwks_uri": "https://evil.example/j"})
        return JSONResponse({"issuer": issuer_box[0]})

    async with broken_upstream(handler) as issuer:
        issuer_box.append(issuer)
        page = await _sign_in_page(fed, issuer)
    assert page.status_code == 502, page.text
    assert "Traceback" not in page.text
    kind = "unavailable" if answer == "server error" else "refused"
    assert await _failures(fed, kind) == 1
    [row] = await audit_rows(fed.identity, events.FEDERATION_UPSTREAM_FAILED)
    assert row.fields["reason"] == kind
    assert await _users(fed) == 0


async def test_callback_from_another_issuer_is_refused(fed: Fed) -> None:
    """RFC 9207: an authorization response whose ``iss`` is not the provider's (a mix-up
    attack) is refused before the code is used."""
    provider = await idps.add_provider(fed.identity, name="corp", issuer="https://idp.example",
                                       client_id="tessera", client_secret="s3cret")
    from tessera.identity.federation.endpoints import FEDERATION_COOKIE
    from tessera.identity.login.csrf import timed_serializer
    from tessera.keys.derivation import derive_key

    serializer = timed_serializer(
        derive_key(fed.identity.settings.key_encryption_key(), "federation-state"),
        "tessera-federation-state", fed.identity.clock)
    cookie = serializer.dumps({"i": provider.idp_id, "s": "st-1", "n": "n", "v": "v",
                               "f": {}, "m": None})
    async with httpx.AsyncClient(cookies={FEDERATION_COOKIE: str(cookie)}) as browser:
        page = await browser.get(f"{fed.url}/federation/{provider.idp_id}/callback",
                                 params={"code": "c", "state": "st-1",
                                         "iss": "https://attacker.example"})
    assert page.status_code == 502
    [row] = await audit_rows(fed.identity, events.FEDERATION_UPSTREAM_FAILED)
    assert "RFC 9207" in row.fields["detail"]


async def test_callback_without_a_started_login_is_refused(fed: Fed) -> None:
    provider = await idps.add_provider(fed.identity, name="corp", issuer="https://idp.example",
                                       client_id="tessera", client_secret="s3cret")
    async with httpx.AsyncClient() as browser:
        page = await browser.get(f"{fed.url}/federation/{provider.idp_id}/callback",
                                 params={"code": "c", "state": "forged"})
    assert page.status_code == 400
    assert "expired" in page.text


async def test_a_suspended_tenant_refuses_upstream_logins(fed: Fed) -> None:
    from tessera.identity.federation.service import FederationError

    provider = await idps.add_provider(fed.identity, name="corp", issuer="https://idp.example",
                                       client_id="tessera", client_secret="s3cret")
    async with fed.identity.store.unit_of_work() as uow:
        assert await uow.tenants.set_suspended(provider.tenant_id, fed.identity.clock.now())
    with pytest.raises(FederationError, match="suspended"):
        await fed.identity.federation.login(provider, {"sub": "u-1"}, {})
    assert await _users(fed) == 0
