"""A BFF wired to the in-process identity service, an upstream API that records what it
received, and a "browser": one httpx client per origin, each with its own cookie jar,
following the redirects between them by hand (so each hop can be inspected)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tessera.bff import BffSettings, MemoryVault, Vault, create_bff
from tessera.core.clock import FixedClock
from tessera.identity.app import build_app as identity_app
from tessera.identity.compose import Identity
from tessera.keys import Sealer
from tests.conftest import ISSUER
from tests.support import AppClient, TesseraDriver

BFF_URL = "https://bff.test"
API_AUDIENCE = "https://api.example"
PASSWORD = "correct horse battery"
CSRF = {"x-tessera-bff": "1"}


@dataclass
class Upstream:
    """Records every request; answers 200 with what it saw, or a queued answer."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    answers: list[Response] = field(default_factory=list)

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            body = await request.body()
            self.seen.append({"method": request.method, "path": request.url.path,
                              "query": request.url.query, "url": str(request.url),
                              "headers": dict(request.headers), "body": body})
            if self.answers:
                return self.answers.pop(0)
            return JSONResponse({"ok": True, "path": request.url.path},
                                headers={"set-cookie": "upstream=1",
                                         "access-control-allow-origin": "*"})

        return Starlette(routes=[Route("/{path:path}", echo, methods=[
            "GET", "POST", "PUT", "PATCH", "DELETE"])])


@dataclass
class BffWorld:
    identity: Identity
    driver: TesseraDriver
    client: AppClient
    settings: BffSettings
    vault: Vault
    upstream: Upstream
    app: Starlette
    browser: httpx.AsyncClient
    """The browser's view of the BFF origin (its cookie jar)."""
    idp: httpx.AsyncClient
    """The same browser's view of the identity service origin."""
    clock: FixedClock

    async def login(self, username: str = "alice", return_to: str | None = None
                    ) -> httpx.Response:
        """Sign in through the BFF like a browser; returns the callback's response."""
        start = await self.browser.get("/bff/login",
                                       params={"return_to": return_to} if return_to else None)
        assert start.status_code == 303, start.text
        callback = await self.sign_in_at_idp(start.headers["location"], username)
        return await self.browser.get(callback)

    async def sign_in_at_idp(self, authorize_url: str, username: str = "alice") -> str:
        """The identity service's login form; returns the callback URL it redirects to."""
        parts = urlsplit(authorize_url)
        assert f"{parts.scheme}://{parts.netloc}" == ISSUER, authorize_url
        page = await self.idp.get(f"{parts.path}?{parts.query}")
        if page.status_code == 303:
            location: str = page.headers["location"]
            return location
        assert page.status_code == 200, page.text
        form = dict(re.findall(r"name='([^']+)' value='([^']*)'", page.text))
        form |= {"username": username, "password": PASSWORD}
        done = await self.idp.post("/authorize", data=form)
        assert done.status_code == 303, done.text
        location = done.headers["location"]
        assert location.startswith(f"{BFF_URL}/bff/callback?"), location
        return location

    def api(self, method: str, path: str, **kw: Any) -> Any:
        headers = {**CSRF, "origin": BFF_URL, **kw.pop("headers", {})}
        return self.browser.request(method, path, headers=headers, **kw)


async def make_world(identity: Identity, driver: TesseraDriver, clock: FixedClock,
                     vault: Any = None, revocations: Any = None,
                     **overrides: Any) -> BffWorld:
    client = await driver.client(
        grants=("authorization_code", "refresh_token"), scope="api:read api:write",
        audiences=(API_AUDIENCE,), redirect_uris=(f"{BFF_URL}/bff/callback",),
        post_logout_redirect_uris=(f"{BFF_URL}/",))
    await driver.user("alice")
    assert client.secret
    values: dict[str, Any] = {
        "public_url": BFF_URL, "issuer": ISSUER, "client_id": client.client_id,
        "client_secret": client.secret, "scope": "openid api:read",
        "secret_key": Sealer.new_kek_b64(), "routes": {"orders": "http://orders.internal/v1"},
        "session_check_interval": 0}
    values.update(overrides)
    settings = BffSettings(**values)
    vault = vault if vault is not None else MemoryVault(clock)
    upstream = Upstream()
    app = create_bff(settings, clock=clock, vault=vault,
                     identity_transport=httpx.ASGITransport(app=identity_app(identity)),
                     upstream_transport=httpx.ASGITransport(app=upstream.app()),
                     revocations=revocations)
    browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BFF_URL)
    idp = httpx.AsyncClient(transport=httpx.ASGITransport(app=identity_app(identity)),
                            base_url=ISSUER)
    return BffWorld(identity, driver, client, settings, vault, upstream, app, browser, idp,
                    clock)
