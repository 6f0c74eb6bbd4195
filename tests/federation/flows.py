"""Browser-like helpers for the federation tests (httpx with a cookie jar, following
redirects by hand so each hop is visible)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from tessera.application import admin
from tessera.identity.compose import Identity
from tessera.identity.federation import admin as idps
from tessera.identity.federation.service import new_idp_id, provider_urls
from tests.federation.conftest import Fed, Upstream
from tests.support import pkce_pair

REDIRECT = "https://app.example/cb"
AUDIENCE = "https://api.example"
MAPPING = """\
claims:
  department: department
  custom:
    employee_id: employee_number
roles:
  helpdesk: support
acr:
  "urn:upstream:mfa": "urn:tessera:acr:mfa"
  "urn:upstream:pwd": "urn:tessera:acr:pwd"
step_up_acr: "urn:upstream:mfa"
linking:
  verified_email_domains: [corp.example]
home_realm_domains: [corp.example]
"""


@dataclass
class App:
    client_id: str
    secret: str


async def add_upstream(fed: Fed, upstream: Upstream, *, name: str = "corp",
                       mapping: str = MAPPING) -> str:
    """Register Tessera at the upstream and the upstream in Tessera; returns the idp_id."""
    idp_id = new_idp_id()
    urls = provider_urls(fed.url, idp_id)
    client_id, secret = upstream.register(urls["redirect_uri"], urls["backchannel_logout_uri"])
    await idps.add_provider(fed.identity, name=name, issuer=upstream.issuer,
                            client_id=client_id, client_secret=secret, mapping_text=mapping,
                            idp_id=idp_id)
    return idp_id


async def web_app(identity: Identity) -> App:
    client, secret = await admin.create_client(
        identity.admin, name="federated app", grants=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,), scope="openid email profile api:read",
        audiences=(AUDIENCE,))
    assert secret is not None
    return App(client.client_id, secret)


_FORM = re.compile(r"<form method=\"post\" action=\"([^\"]+)\"")


async def walk(browser: httpx.AsyncClient, url: str, *, login: str | None = None,
               password: str | None = None, otp: str | None = None,
               max_hops: int = 20) -> httpx.Response:
    """Follow redirects (and fill the upstream's login form once) until a redirect to the
    client's redirect URI or a page that is not the upstream's login form."""
    response = await browser.get(url)
    for _ in range(max_hops):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(REDIRECT):
                return response
            response = await browser.get(location)
            continue
        form = _FORM.search(response.text)
        if form and login is not None:
            data = {"login": login, "password": password or ""}
            if otp is not None:
                data["otp"] = otp
            response = await browser.post(urljoin(str(response.url), form.group(1)), data=data)
            login = None
            continue
        return response
    raise AssertionError("too many redirects")


def authorize_url(fed: Fed, app: App, challenge: str, **extra: str) -> str:
    params = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
              "scope": "openid email profile api:read", "state": "st-1",
              "code_challenge": challenge, "code_challenge_method": "S256", "nonce": "n-1",
              **extra}
    return str(httpx.URL(f"{fed.url}/authorize", params=params))


async def sign_in(fed: Fed, app: App, browser: httpx.AsyncClient, *, login: str = "alice",
                  otp: str | None = None, **extra: str) -> dict[str, Any]:
    """Authorization code flow at Tessera through the upstream; returns the token response."""
    verifier, challenge = pkce_pair()
    done = await walk(browser, authorize_url(fed, app, challenge, **extra), login=login,
                      password=ACCOUNT_PASSWORDS[login], otp=otp)
    assert done.is_redirect, done.text
    query = parse_qs(urlsplit(done.headers["location"]).query)
    assert "code" in query, query
    token = await browser.post(f"{fed.url}/token", data={
        "grant_type": "authorization_code", "code": query["code"][0],
        "redirect_uri": REDIRECT, "code_verifier": verifier},
        auth=(app.client_id, app.secret))
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body


ACCOUNT_PASSWORDS = {"alice": "alice-upstream-pw", "bob": "bob-upstream-pw"}


TESSERA_MAPPING = """\
claims:
  email: null
  email_verified: null
  name: preferred_username
  custom:
    upstream_tenant: tid
acr:
  "urn:tessera:acr:mfa": "urn:tessera:acr:mfa"
"""
UPSTREAM_PASSWORD = "partner-password-1"


async def add_tessera_upstream(fed: Fed, second: Fed, *, name: str = "partner") -> str:
    """The second Tessera instance as an upstream: a client there, a provider here."""
    idp_id = new_idp_id()
    urls = provider_urls(fed.url, idp_id)
    client, secret = await admin.create_client(
        second.identity.admin, name="tessera downstream",
        grants=("authorization_code", "client_credentials"),
        redirect_uris=(urls["redirect_uri"],), scope="openid email profile")
    assert secret is not None
    await idps.add_provider(fed.identity, name=name, issuer=second.url,
                            client_id=client.client_id, client_secret=secret,
                            mapping_text=TESSERA_MAPPING, idp_id=idp_id)
    return idp_id


_TESSERA_FIELD = re.compile(r"name='([^']+)' value='([^']*)'")


async def walk_tessera(browser: httpx.AsyncClient, url: str, *, username: str,
                       password: str = UPSTREAM_PASSWORD, max_hops: int = 20
                       ) -> httpx.Response:
    """``walk`` for a Tessera upstream: its login form has hidden fields and a CSRF token."""
    response = await browser.get(url)
    filled = False
    for _ in range(max_hops):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(REDIRECT):
                return response
            response = await browser.get(location)
            continue
        if not filled and "name=password" in response.text:
            form = dict(_TESSERA_FIELD.findall(response.text))
            form |= {"username": username, "password": password}
            origin = f"{response.url.scheme}://{response.url.netloc.decode()}"
            response = await browser.post(urljoin(str(response.url), "authorize"), data=form,
                                          headers={"origin": origin})
            filled = True
            continue
        return response
    raise AssertionError("too many redirects")


async def sign_in_tessera(fed: Fed, app: App, browser: httpx.AsyncClient, *, username: str,
                          **extra: str) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    done = await walk_tessera(browser, authorize_url(fed, app, challenge, **extra),
                              username=username)
    assert done.is_redirect, done.text
    query = parse_qs(urlsplit(done.headers["location"]).query)
    assert "code" in query, query
    token = await browser.post(f"{fed.url}/token", data={
        "grant_type": "authorization_code", "code": query["code"][0],
        "redirect_uri": REDIRECT, "code_verifier": verifier},
        auth=(app.client_id, app.secret))
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body
