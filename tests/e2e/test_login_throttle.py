"""Failed-password throttling at the login page, per account and per client address, as an
attacker meets it: guessing one account from many addresses, spraying many accounts from
one address. Neither the answers nor the work done tell whether an account exists."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tessera.identity.app import build_app
from tessera.identity.compose import Identity
from tests.conftest import ISSUER
from tests.e2e.helpers import form_fields
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair

PASSWORD = "correct horse battery"


@asynccontextmanager
async def browser(identity: Identity, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh browser (no cookies) connecting from ``address``."""
    transport = httpx.ASGITransport(app=build_app(identity), client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield http


async def attempt(identity: Identity, app: AppClient, username: str, password: str, *,
                  address: str) -> httpx.Response:
    """Open the login page and submit it once, like a browser would."""
    _, challenge = pkce_pair()
    async with browser(identity, address) as http:
        page = await http.get("/authorize", params={
            "response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
            "scope": "openid", "state": "s", "code_challenge": challenge,
            "code_challenge_method": "S256"})
        assert page.status_code == 200, page.text
        form = form_fields(page.text) | {"username": username, "password": password}
        return await http.post("/authorize", data=form)


async def test_one_account_guessed_from_many_addresses_is_throttled(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    await tessera.user("alice")
    limit = identity.settings.security.login_attempts_per_minute
    for i in range(limit):
        wrong = await attempt(identity, app, "alice", f"guess-{i}", address=f"10.0.0.{i}")
        assert wrong.status_code == 401, wrong.text
    # the right password, from yet another address: the account is held
    held = await attempt(identity, app, "alice", PASSWORD, address="10.0.1.1")
    assert held.status_code == 429 and "Too many attempts" in held.text
    # other accounts from those addresses are not
    await tessera.user("bob")
    assert (await attempt(identity, app, "bob", PASSWORD, address="10.0.0.1")
            ).status_code == 303


async def test_many_accounts_sprayed_from_one_address_are_throttled(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    await tessera.user("alice")
    limit = identity.settings.security.login_failures_per_address_per_minute
    for i in range(limit):
        wrong = await attempt(identity, app, f"user{i}", "Winter2026!", address="203.0.113.9")
        assert wrong.status_code == 401, wrong.text
    held = await attempt(identity, app, "alice", PASSWORD, address="203.0.113.9")
    assert held.status_code == 429
    elsewhere = await attempt(identity, app, "alice", PASSWORD, address="198.51.100.2")
    assert elsewhere.status_code == 303, elsewhere.text


async def test_a_correct_password_clears_the_accounts_count(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    await tessera.user("alice")
    limit = identity.settings.security.login_attempts_per_minute
    for round_ in range(2):
        for i in range(limit - 1):
            wrong = await attempt(identity, app, "alice", "nope",
                                  address=f"10.{round_}.0.{i}")
            assert wrong.status_code == 401
        ok = await attempt(identity, app, "alice", PASSWORD, address=f"10.{round_}.9.9")
        assert ok.status_code == 303, ok.text


def _without(text: str, *names: str) -> str:
    """The page with what legitimately differs between two attempts masked."""
    for name in names:
        text = text.replace(name, "NAME")
    return re.sub(r"value='[A-Za-z0-9_\-.]{20,}'", "value='X'", text)


async def test_unknown_and_existing_accounts_are_indistinguishable(
        tessera: TesseraDriver, identity: Identity) -> None:
    app = await tessera.web_client()
    await tessera.user("alice")
    checked: list[str | None] = []
    verify = identity.passwords.verify

    def spy(password_hash: str | None, password: str) -> bool:
        checked.append(password_hash)
        return verify(password_hash, password)

    identity.passwords.verify = spy  # type: ignore[method-assign]
    limit = identity.settings.security.login_attempts_per_minute
    answers: dict[str, list[httpx.Response]] = {"alice": [], "nobody": []}
    for name in answers:
        for i in range(limit + 1):
            answers[name].append(await attempt(identity, app, name, "wrong",
                                               address=f"10.{len(name)}.0.{i}"))
    for known, unknown in zip(answers["alice"], answers["nobody"], strict=True):
        assert known.status_code == unknown.status_code
        assert dict(known.headers).keys() == dict(unknown.headers).keys()
        assert _without(known.text, "alice") == _without(unknown.text, "nobody")
    assert [r.status_code for r in answers["nobody"]] == [401] * limit + [429]
    # one password check per attempt below the limit, for the unknown user too (a dummy
    # hash): the time taken does not tell the accounts apart
    assert len(checked) == 2 * limit
    assert checked.count(None) == limit
