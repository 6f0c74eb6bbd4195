"""The example SPA (examples/bff-spa) in a real browser, headless Chromium, behind the BFF:
sign in → API call → sign out → API refused.

The identity service runs at ``http://localhost:<port>`` and the BFF (serving the SPA) at
``http://127.0.0.1:<port>``, both on real sockets — two sites, as in production, both on
loopback, where Chromium treats plain HTTP as a secure context and so accepts the BFF's
``__Host-`` ``Secure`` cookie (the development mode docs/browser-sessions.md describes).
The upstream API verifies each token with the verifier SDK's pure core against the
identity service's keys and every revocation event it published.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tessera.bff import BffSettings, create_bff
from tessera.core.clock import FixedClock
from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tessera.keys import Sealer
from tessera.store.sql import SqlStore
from tests.conftest import make_identity, make_settings
from tests.e2e.helpers import verifier_verdict
from tests.support import TesseraDriver
from tests.system.test_console_browser import browser  # noqa: F401  (the Chromium fixture)

SPA = Path(__file__).resolve().parents[2] / "examples" / "bff-spa"
AUDIENCE = "https://orders.example"
PASSWORD = "correct horse battery"


class _WallClock(FixedClock):
    def now(self) -> float:
        return time.time()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _serve(app: Any, host: str, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="error",
                                           lifespan="on"))
    task = asyncio.get_running_loop().create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def _orders_api(identity: Identity, seen: list[str]) -> Starlette:
    async def orders(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        reason = await verifier_verdict(identity, token, AUDIENCE) if scheme == "Bearer" \
            else "no token"
        if reason is not None:
            return JSONResponse({"error": "invalid_token", "reason": reason}, 401)
        seen.append(token)
        return JSONResponse({"orders": [{"id": 1, "item": "tea"}]})

    return Starlette(routes=[Route("/orders", orders)])


def _wait_for(driver: Any, element_id: str, text: str) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    def has(d: Any) -> bool:
        return any(text in e.text for e in d.find_elements(By.ID, element_id))

    try:
        WebDriverWait(driver, 10).until(has)
    except Exception:
        body = driver.find_element(By.TAG_NAME, "body").text[:1500]
        raise AssertionError(f"#{element_id} never showed {text!r} at "
                             f"{driver.current_url}: {body}") from None
    return str(driver.find_element(By.ID, element_id).text)


def _journey(driver: Any, bff_url: str) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{bff_url}/")
    _wait_for(driver, "status", "no")
    driver.find_element(By.ID, "login").click()  # → identity service's sign-in form
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "username"))
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait_for(driver, "status", "yes")  # back in the SPA, signed in
    cookies = {c["name"]: c for c in driver.get_cookies()}
    session_cookie = cookies["__Host-tessera-bff"]
    assert session_cookie["httpOnly"] and session_cookie["secure"], session_cookie
    assert session_cookie.get("sameSite") == "Strict", session_cookie
    document_cookie = driver.execute_script("return document.cookie")
    assert "tessera-bff" not in document_cookie  # HttpOnly: the page cannot read it

    driver.find_element(By.ID, "call-api").click()
    called = _wait_for(driver, "result", "HTTP 200")
    assert "tea" in called, called

    driver.find_element(By.ID, "logout").click()  # → end-session → back to the SPA
    WebDriverWait(driver, 10).until(lambda d: d.current_url.rstrip("/") == bff_url)
    _wait_for(driver, "status", "no")
    driver.find_element(By.ID, "call-api").click()
    refused = _wait_for(driver, "result", "HTTP 401")
    return {"called": called, "refused": refused}


async def test_spa_login_api_call_logout_then_refused(
        tmp_path: Path, sqlite_store: SqlStore, browser: Any) -> None:  # noqa: F811
    idp_port, bff_port = _free_port(), _free_port()
    idp_url, bff_url = f"http://localhost:{idp_port}", f"http://127.0.0.1:{bff_port}"
    identity = await make_identity(make_settings(tmp_path, issuer=idp_url), sqlite_store,
                                   _WallClock())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(identity)),
                                     base_url=idp_url) as http:
            driver = TesseraDriver(identity, http)
            client = await driver.client(
                grants=("authorization_code", "refresh_token"), scope="orders:read",
                audiences=(AUDIENCE,), redirect_uris=(f"{bff_url}/bff/callback",),
                post_logout_redirect_uris=(f"{bff_url}/",))
            await driver.user("alice", PASSWORD)
        assert client.secret
        seen: list[str] = []
        bff = create_bff(BffSettings(
            public_url=bff_url, issuer=idp_url, client_id=client.client_id,
            client_secret=client.secret, scope="openid orders:read",
            secret_key=Sealer.new_kek_b64(), routes={"orders": "http://orders.internal"},
            static_dir=str(SPA), session_check_interval=0),
            upstream_transport=httpx.ASGITransport(app=_orders_api(identity, seen)))
        async with _serve(build_app(identity), "localhost", idp_port), \
                _serve(bff, "127.0.0.1", bff_port):
            result = await asyncio.to_thread(_journey, browser, bff_url)
        assert "unauthenticated" in result["refused"]
        (token,) = seen
        # the token the API accepted before logout is refused by any verifier now
        assert await verifier_verdict(identity, token, AUDIENCE) is not None
    finally:
        await identity.audit.aclose()
