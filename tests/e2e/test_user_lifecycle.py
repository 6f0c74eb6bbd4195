"""User lifecycle (issue 9, item 5): disable, enable, delete and a password reset each
publish a user-wide revocation through the outbox that the verifier SDK honours, and
every grant (authorization code, refresh, single sign-on, token exchange) refuses a user
who is not in good standing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tessera.application import accounts
from tessera.application.admin import AdminError
from tessera.core.clock import FixedClock
from tessera.core.revocation import RevocationKind
from tessera.core.users import User
from tessera.identity.compose import Identity
from tessera.identity.login import LoginFailed
from tessera.identity.login.totp import TOTP
from tests.e2e.helpers import claims_of, last_seq, published_kinds, refresh, verifier_verdict
from tests.support import REDIRECT, AppClient, TesseraDriver, pkce_pair

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"
API = "https://api.example"
PASSWORD = "correct horse battery"


async def _user(identity: Identity, username: str = "alice") -> User:
    async with identity.store.unit_of_work(read_only=True) as uow:
        user = await uow.users.by_username("default", username)
    assert user is not None
    return user


async def _silent_code(tessera: TesseraDriver, app: AppClient) -> dict[str, list[str]]:
    """``prompt=none`` with the browser's session: the code, or the error."""
    response = await tessera.http.get("/authorize", params={
        "response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
        "scope": "openid", "state": "s", "prompt": "none",
        "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"})
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)


async def test_disabling_a_user_ends_every_session_and_refuses_every_grant(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    web = await tessera.web_client()
    gateway = await tessera.client(grants=(EXCHANGE,), audiences=("https://orders.internal",),
                                   subject_audiences=(API,))
    await tessera.user()
    tokens = await tessera.login_tokens(web)
    verifier, challenge = pkce_pair()
    pending_code = await tessera.authorize_code(web, challenge=challenge)  # SSO, not redeemed
    alice = await _user(identity)
    seq = await last_seq(identity)

    assert await accounts.set_disabled(identity.admin, alice, disabled=True, actor="test") == 1
    published = await published_kinds(identity, seq)
    assert (RevocationKind.USER_REVOKED, alice.user_id) in published
    assert (RevocationKind.SESSION_REVOKED, claims_of(tokens["access_token"])["sid"]) \
        in published
    assert await verifier_verdict(identity, tokens["access_token"], API) in (
        "session_revoked", "user_revoked")

    assert (await refresh(tessera, web, tokens["refresh_token"])).json()[
        "error"] == "invalid_grant"
    code = await tessera.token(web, grant_type="authorization_code", code=pending_code,
                               redirect_uri=REDIRECT, code_verifier=verifier)
    assert code.json()["error"] == "invalid_grant"
    exchanged = await tessera.token(gateway, grant_type=EXCHANGE,
                                    subject_token=tokens["access_token"],
                                    subject_token_type=AT, audience="https://orders.internal")
    assert exchanged.json()["error"] == "invalid_grant"
    assert (await _silent_code(tessera, web))["error"] == ["login_required"]
    with pytest.raises(LoginFailed):
        await identity.login.authenticate("default", "alice", PASSWORD, client_host=None)

    clock.advance(1)
    await accounts.set_disabled(identity.admin, alice, disabled=False, actor="test")
    tessera.http.cookies.clear()
    again = await tessera.login_tokens(web)
    assert (await tessera.introspect(web, again["access_token"]))["active"] is True
    assert await verifier_verdict(identity, again["access_token"], API) is None


async def test_grants_refuse_a_disabled_user_even_with_a_live_session(
        tessera: TesseraDriver, identity: Identity) -> None:
    """The grant checks the user itself, not only the sessions that disabling ends."""
    web = await tessera.web_client()
    await tessera.user()
    tokens = await tessera.login_tokens(web)
    verifier, challenge = pkce_pair()
    pending_code = await tessera.authorize_code(web, challenge=challenge)
    alice = await _user(identity)
    async with identity.store.unit_of_work() as uow:
        assert await uow.users.set_disabled(alice.user_id, True)  # sessions left alone
    assert (await refresh(tessera, web, tokens["refresh_token"])).json()[
        "error"] == "invalid_grant"
    code = await tessera.token(web, grant_type="authorization_code", code=pending_code,
                               redirect_uri=REDIRECT, code_verifier=verifier)
    assert code.json()["error"] == "invalid_grant"
    assert (await _silent_code(tessera, web))["error"] == ["access_denied"]
    assert await tessera.introspect(web, tokens["access_token"]) == {"active": False}
    # and the refresh token was not burnt: once enabled again, it still works
    async with identity.store.unit_of_work() as uow:
        assert await uow.users.set_disabled(alice.user_id, False)
    assert (await refresh(tessera, web, tokens["refresh_token"])).status_code == 200


async def test_deleting_a_user_erases_it_and_frees_the_username(
        tessera: TesseraDriver, identity: Identity) -> None:
    web = await tessera.web_client()
    await tessera.user("alice", roles=("support",))
    tokens = await tessera.login_tokens(web)
    alice = await _user(identity)
    await identity.totp.provision(alice, actor="test")
    seq = await last_seq(identity)
    assert await accounts.delete_user(identity.admin, alice, actor="test") == 1
    assert (RevocationKind.USER_REVOKED, alice.user_id) in await published_kinds(identity, seq)
    async with identity.store.unit_of_work(read_only=True) as uow:
        gone = await uow.users.get(alice.user_id)
        assert await uow.factors.get(alice.user_id, TOTP) is None
        assert await uow.roles.of_user(alice.user_id) == frozenset()
        assert await uow.users.by_username("default", "alice") is None
    assert gone is not None and gone.deleted_at is not None and gone.disabled
    assert gone.password_hash == "!" and gone.username == f"deleted:{alice.user_id}"
    assert (await refresh(tessera, web, tokens["refresh_token"])).json()[
        "error"] == "invalid_grant"
    with pytest.raises(AdminError):
        await accounts.find_user(identity.admin, "alice", "default")
    with pytest.raises(AdminError):  # a tombstone cannot come back
        await accounts.set_disabled(identity.admin, alice, disabled=False, actor="test")
    # the name is free for someone new, who inherits nothing
    newcomer = await tessera.user("alice")
    assert newcomer != alice.user_id
    async with identity.store.unit_of_work(read_only=True) as uow:
        assert await uow.roles.of_user(newcomer) == frozenset()


async def test_a_password_reset_signs_the_user_out_everywhere(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    web = await tessera.web_client()
    await tessera.user()
    first = await tessera.login_tokens(web)
    tessera.http.cookies.clear()
    second = await tessera.login_tokens(web)
    alice = await _user(identity)
    seq = await last_seq(identity)
    with pytest.raises(AdminError, match="at least 8"):
        await accounts.set_password(identity.admin, alice, "short", actor="test")
    assert await accounts.set_password(identity.admin, alice, "a brand new secret",
                                       actor="test") == 2
    assert (RevocationKind.USER_REVOKED, alice.user_id) in await published_kinds(identity, seq)
    for tokens in (first, second):
        assert (await refresh(tessera, web, tokens["refresh_token"])).json()[
            "error"] == "invalid_grant"
    with pytest.raises(LoginFailed):
        await identity.login.authenticate("default", "alice", PASSWORD, client_host=None)
    clock.advance(1)
    tessera.http.cookies.clear()
    await tessera.login_tokens(web, password="a brand new secret")
