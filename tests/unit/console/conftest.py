"""Console fixtures: an identity whose console admits ``root`` at ``urn:tessera:acr:pwd``
(tests that need step-up raise ``required_acr``), and a driver that acts like a browser."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.core.acr import ACR_PASSWORD
from tessera.core.sessions import Session
from tessera.identity.compose import Identity
from tessera.settings import Settings
from tests.conftest import make_settings
from tests.support import AppClient, TesseraDriver

PASSWORD = "correct horse battery"
_CSRF = re.compile(r"name='csrf_token' value='([^']+)'")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, console={"required_acr": ACR_PASSWORD,
                                            "max_auth_age": 900, "page_size": 5})


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@dataclass
class ConsoleDriver:
    identity: Identity
    http: httpx.AsyncClient
    tessera: TesseraDriver

    async def login(self, username: str = "root", password: str = PASSWORD,
                    **extra: str) -> httpx.Response:
        page = await self.http.get("/console/login")
        assert page.status_code == 200, page.text
        return await self.http.post("/console/login", data={
            "csrf_token": csrf_of(page.text), "username": username, "password": password,
            **extra})

    async def login_as(self, tenant: str) -> httpx.Response:
        return await self.login(tenant=tenant)

    async def admin(self, role: str = "platform-admin", tenant: str = "default") -> str:
        """Create ``root`` holding ``role`` and sign in to the console; returns root's
        user id."""
        user_id = await self.tessera.user("root", tenant=tenant, roles=(role,))
        response = await self.login()
        assert response.status_code == 303, response.text
        return user_id

    async def csrf(self) -> str:
        return csrf_of((await self.http.get("/console/sessions")).text)

    async def revoke(self, kind: str, target: str, *, confirm: bool = True) -> httpx.Response:
        data = {"kind": kind, "target": target, "csrf_token": await self.csrf()}
        page = await self.http.post("/console/revoke", data=data)
        assert page.status_code == 200, page.text
        assert "Yes, revoke" in page.text
        if not confirm:
            return page
        return await self.http.post("/console/revoke", data={**data, "confirm": "yes",
                                                             "csrf_token": csrf_of(page.text)})

    async def user_session(self, username: str = "alice") -> tuple[AppClient, dict[str, Any]]:
        """A user signed in to a web client (in another browser: cookies are kept apart)."""
        app = await self.tessera.web_client()
        await self.tessera.user(username)
        saved = dict(self.http.cookies)
        self.http.cookies.clear()
        tokens = await self.tessera.login_tokens(app, username=username)
        self.http.cookies.clear()
        self.http.cookies.update(saved)
        return app, tokens

    async def session(self, sid: str) -> Session:
        async with self.identity.store.unit_of_work(read_only=True) as uow:
            session = await uow.sessions.get(sid)
        assert session is not None
        return session


@pytest.fixture
def console(identity: Identity, http: httpx.AsyncClient,
            tessera: TesseraDriver) -> ConsoleDriver:
    return ConsoleDriver(identity, http, tessera)
