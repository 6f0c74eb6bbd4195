"""Test drivers: act like a client application against the real ASGI app."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tessera.application import accounts, admin
from tessera.identity.compose import Identity
from tests.polling import eventually

__all__ = ["AppClient", "TesseraDriver", "eventually", "pkce_pair"]

REDIRECT = "https://app.example/cb"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class AppClient:
    client_id: str
    secret: str | None

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.client_id, self.secret) if self.secret else None


class TesseraDriver:
    def __init__(self, identity: Identity, http: httpx.AsyncClient) -> None:
        self.identity = identity
        self.http = http

    async def client(self, *, grants: tuple[str, ...] = ("client_credentials",),
                     scope: str = "api:read api:write", public: bool = False,
                     audiences: tuple[str, ...] = ("https://api.example",),
                     redirect_uris: tuple[str, ...] = (),
                     post_logout_redirect_uris: tuple[str, ...] = (),
                     tenant: str | None = None, third_party: bool = False,
                     subject_audiences: tuple[str, ...] = ()) -> AppClient:
        if "authorization_code" in grants and not redirect_uris:
            redirect_uris = (REDIRECT,)
        client, secret = await admin.create_client(
            self.identity.admin, name="test app", grants=grants, public=public,
            redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout_redirect_uris,
            scope=scope, audiences=audiences, tenant_id=tenant, third_party=third_party,
            subject_audiences=subject_audiences)
        return AppClient(client.client_id, secret)

    async def web_client(self, *, public: bool = False, scope: str = "api:read api:write",
                         **kw: Any) -> AppClient:
        return await self.client(grants=("authorization_code", "refresh_token"), public=public,
                                 scope=scope, **kw)

    async def user(self, username: str = "alice", password: str = "correct horse battery",
                   *, tenant: str = "default", roles: tuple[str, ...] = ()) -> str:
        user = await admin.create_user(self.identity.admin, username=username, password=password,
                                       tenant_id=tenant)
        for role in roles:
            await accounts.grant_role(self.identity.admin, user, role, actor="test")
        return user.user_id

    async def token(self, app: AppClient, **data: str) -> httpx.Response:
        if app.secret is None:
            data.setdefault("client_id", app.client_id)
        return await self.http.post("/token", data=data, auth=app.auth)  # type: ignore[arg-type]

    async def authorize_code(self, app: AppClient, *, username: str = "alice",
                             password: str = "correct horse battery",
                             scope: str = "openid api:read",
                             challenge: str | None = None, nonce: str | None = None,
                             extra: dict[str, str] | None = None) -> str:
        """Drive the login page like a browser; return the authorization code."""
        params = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
                  "scope": scope, "state": "s-123"}
        if challenge:
            params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        if nonce:
            params["nonce"] = nonce
        params |= extra or {}
        page = await self.http.get("/authorize", params=params)
        if page.status_code == 303:
            return self._code_from(page)
        assert page.status_code == 200, page.text
        form = dict(re.findall(r"name='([^']+)' value='([^']*)'", page.text))
        form |= {"username": username, "password": password}
        done = await self.http.post("/authorize", data=form)
        assert done.status_code == 303, done.text
        return self._code_from(done)

    @staticmethod
    def _code_from(response: httpx.Response) -> str:
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query.get("state") == ["s-123"], query
        return query["code"][0]

    async def login_tokens(self, app: AppClient, **kw: Any) -> dict[str, Any]:
        """Full authorization code flow with PKCE; returns the token response."""
        verifier, challenge = pkce_pair()
        code = await self.authorize_code(app, challenge=challenge, **kw)
        response = await self.token(app, grant_type="authorization_code", code=code,
                                    redirect_uri=REDIRECT, code_verifier=verifier)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def introspect(self, app: AppClient, token: str, **data: str) -> dict[str, Any]:
        response = await self.http.post("/introspect", data={"token": token, **data},
                                        auth=app.auth)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body
