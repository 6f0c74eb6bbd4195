"""The device authorization grant, RFC 8628 (issue 13, item 5): discovery, the device
authorization endpoint with client authentication per client type, the ``/device`` page
(user code format §6.1, rate limit, expiry, sign-in, approve/deny, tenant isolation),
polling with ``authorization_pending``, ``slow_down`` (+5 s), ``access_denied`` and
``expired_token``, hashed codes, and the device's session listed and revocable like any
other."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pyotp

from tessera.core.clients import GRANT_DEVICE_CODE
from tessera.core.clock import FixedClock
from tessera.core.device import USER_CODE_ALPHABET
from tessera.core.revocation import RevocationKind
from tessera.identity.compose import Identity
from tessera.observability import events
from tests.e2e.helpers import audit_rows, claims_of, form_fields, last_seq, published_kinds
from tests.support import AppClient, TesseraDriver

PASSWORD = "correct horse battery"
GRANTS = (GRANT_DEVICE_CODE, "refresh_token")


async def _device_client(tessera: TesseraDriver, *, public: bool = True,
                         tenant: str | None = None,
                         grants: tuple[str, ...] = GRANTS) -> AppClient:
    return await tessera.client(grants=grants, public=public, scope="openid api:read",
                                tenant=tenant)


async def _authorize_device(tessera: TesseraDriver, app: AppClient,
                            **data: str) -> dict[str, Any]:
    if app.secret is None:
        data.setdefault("client_id", app.client_id)
    response = await tessera.http.post("/device_authorization", data=data,
                                       auth=app.auth)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def _poll(tessera: TesseraDriver, app: AppClient, device_code: str) -> httpx.Response:
    return await tessera.token(app, grant_type=GRANT_DEVICE_CODE, device_code=device_code)


async def _enter_code(http: httpx.AsyncClient, user_code: str) -> httpx.Response:
    page = await http.get("/device", params={"user_code": user_code})
    assert page.status_code == 200, page.text
    return await http.post("/device", data=form_fields(page.text) | {"user_code": user_code})


async def _sign_in(http: httpx.AsyncClient, page: httpx.Response, *,
                   username: str = "alice", password: str = PASSWORD) -> httpx.Response:
    assert "Sign in to connect a device" in page.text, page.text
    return await http.post("/device", data=form_fields(page.text) | {
        "username": username, "password": password})


async def _decide(http: httpx.AsyncClient, page: httpx.Response, step: str) -> httpx.Response:
    assert page.status_code == 200 and "asks to use your account" in page.text, page.text
    return await http.post("/device", data=form_fields(page.text) | {"step": step})


async def _approved(tessera: TesseraDriver, app: AppClient, *, username: str = "alice",
                    **data: str) -> dict[str, Any]:
    started = await _authorize_device(tessera, app, scope="openid api:read", **data)
    consent = await _sign_in(tessera.http, await _enter_code(tessera.http,
                                                             started["user_code"]),
                             username=username)
    done = await _decide(tessera.http, consent, "approve")
    assert done.status_code == 200 and "connected" in done.text, done.text
    return started


# -- the happy path -----------------------------------------------------------------------

async def test_discovery_advertises_the_endpoint_and_the_grant(tessera: TesseraDriver) -> None:
    metadata = (await tessera.http.get("/.well-known/openid-configuration")).json()
    assert metadata["device_authorization_endpoint"] == \
        f"{metadata['issuer']}/device_authorization"
    assert GRANT_DEVICE_CODE in metadata["grant_types_supported"]


async def test_a_device_signs_in_through_the_users_browser(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await _device_client(tessera)
    await tessera.user()
    started = await _authorize_device(tessera, app, scope="openid api:read")
    assert set(started) == {"device_code", "user_code", "verification_uri",
                            "verification_uri_complete", "expires_in", "interval"}
    assert re.fullmatch(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}",
                        started["user_code"])
    assert started["verification_uri"].endswith("/device")
    assert started["verification_uri_complete"].endswith(
        f"/device?user_code={started['user_code']}")
    assert (started["expires_in"], started["interval"]) == (600, 5)

    pending = await _poll(tessera, app, started["device_code"])
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"
    assert pending.headers["cache-control"] == "no-store"

    # the user types the code in lower case without the dash: §6.1 normalisation
    typed = started["user_code"].replace("-", "").lower()
    consent = await _sign_in(tessera.http, await _enter_code(tessera.http, typed))
    assert "test app" in consent.text and "api:read" in consent.text
    assert started["user_code"] in consent.text
    clock.advance(5)
    assert (await _poll(tessera, app, started["device_code"])).json()["error"] == \
        "authorization_pending"
    done = await _decide(tessera.http, consent, "approve")
    assert done.status_code == 200 and "connected" in done.text

    clock.advance(5)
    issued = await _poll(tessera, app, started["device_code"])
    assert issued.status_code == 200, issued.text
    tokens = issued.json()
    assert tokens["token_type"] == "Bearer" and "refresh_token" in tokens
    assert "id_token" in tokens and set(tokens["scope"].split()) == {"openid", "api:read"}
    claims = claims_of(tokens["access_token"])
    assert claims["client_id"] == app.client_id
    assert (await tessera.introspect(await tessera.client(), tokens["access_token"]))[
        "active"] is True
    refreshed = await tessera.token(app, grant_type="refresh_token",
                                    refresh_token=tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text

    clock.advance(5)
    again = await _poll(tessera, app, started["device_code"])  # a device code works once
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert [r.fields["client_id"] for r in
            await audit_rows(identity, events.DEVICE_CODE_APPROVED)] == [app.client_id]


async def test_the_device_session_is_listed_and_revocable_like_any_other(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await _device_client(tessera)
    await tessera.user()
    started = await _approved(tessera, app)
    tokens = (await _poll(tessera, app, started["device_code"])).json()
    device_sid = claims_of(tokens["access_token"])["sid"]
    browser_sid = (await identity.login.session_for_cookie(
        tessera.http.cookies.get("tessera_session")))
    assert browser_sid is not None and browser_sid.sid != device_sid
    async with identity.store.unit_of_work(read_only=True) as uow:
        session = await uow.sessions.get(device_sid)
    assert session is not None and session.device_client_id == app.client_id

    page = await tessera.http.get("/account/sessions")
    assert f'data-sid="{device_sid}"' in page.text and "(device)" in page.text
    csrf = re.search(r'name=csrf_token value="([^"]+)"', page.text)
    assert csrf is not None
    seq = await last_seq(identity)
    ended = await tessera.http.post("/account/sessions", data={
        "sid": device_sid, "csrf_token": csrf.group(1)})
    assert ended.status_code == 200
    assert (RevocationKind.SESSION_REVOKED, device_sid) in await published_kinds(identity, seq)
    refused = await tessera.token(app, grant_type="refresh_token",
                                  refresh_token=tokens["refresh_token"])
    assert refused.json()["error"] == "invalid_grant"


async def test_a_confidential_client_authenticates_at_both_endpoints(
        tessera: TesseraDriver) -> None:
    app = await _device_client(tessera, public=False)
    await tessera.user()
    wrong = await tessera.http.post("/device_authorization", data={"scope": "api:read"},
                                    auth=(app.client_id, "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    bare = await tessera.http.post("/device_authorization", data={"client_id": app.client_id})
    assert bare.status_code == 401 and bare.json()["error"] == "invalid_client"
    started = await _approved(tessera, app)
    stolen = await tessera.http.post("/token", data={
        "grant_type": GRANT_DEVICE_CODE, "device_code": started["device_code"],
        "client_id": app.client_id})
    assert stolen.status_code == 401
    assert (await _poll(tessera, app, started["device_code"])).status_code == 200


# -- the device's errors ------------------------------------------------------------------

async def test_polling_too_fast_slows_the_device_down_by_five_seconds(
        tessera: TesseraDriver, clock: FixedClock) -> None:
    app = await _device_client(tessera)
    started = await _authorize_device(tessera, app)
    assert (await _poll(tessera, app, started["device_code"])).json()["error"] == \
        "authorization_pending"
    clock.advance(2)
    fast = await _poll(tessera, app, started["device_code"])
    assert fast.status_code == 400 and fast.json()["error"] == "slow_down"
    assert "10 seconds" in fast.json()["error_description"]
    clock.advance(6)  # 6 s < the new 10 s interval
    assert (await _poll(tessera, app, started["device_code"])).json()["error"] == "slow_down"
    clock.advance(16)
    assert (await _poll(tessera, app, started["device_code"])).json()["error"] == \
        "authorization_pending"


async def test_a_denied_request_is_access_denied(tessera: TesseraDriver,
                                                 identity: Identity) -> None:
    app = await _device_client(tessera)
    await tessera.user()
    started = await _authorize_device(tessera, app)
    consent = await _sign_in(tessera.http, await _enter_code(tessera.http,
                                                             started["user_code"]))
    denied = await _decide(tessera.http, consent, "deny")
    assert denied.status_code == 200 and "not connected" in denied.text
    answer = await _poll(tessera, app, started["device_code"])
    assert answer.status_code == 400 and answer.json()["error"] == "access_denied"
    assert len(await audit_rows(identity, events.DEVICE_CODE_DENIED)) == 1
    replay = await tessera.http.post("/device", data=form_fields(consent.text) | {
        "step": "approve"})
    assert replay.status_code == 400 and "not valid" in replay.text


async def test_an_expired_code_is_expired_token_and_unusable_at_the_page(
        tessera: TesseraDriver, clock: FixedClock) -> None:
    app = await _device_client(tessera)
    await tessera.user()
    started = await _authorize_device(tessera, app)
    clock.advance(601)
    answer = await _poll(tessera, app, started["device_code"])
    assert answer.status_code == 400 and answer.json()["error"] == "expired_token"
    entered = await _enter_code(tessera.http, started["user_code"])
    assert entered.status_code == 400 and "not valid" in entered.text


async def test_bad_input_at_the_device_endpoints(tessera: TesseraDriver) -> None:
    app = await _device_client(tessera)
    not_device = await tessera.client(grants=("authorization_code",), public=True)
    refused = await tessera.http.post("/device_authorization",
                                      data={"client_id": not_device.client_id})
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client"
    scope = await tessera.http.post("/device_authorization", data={
        "client_id": app.client_id, "scope": "admin:everything"})
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    unknown = await tessera.http.post("/device_authorization", data={"client_id": "nobody"})
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    get = await tessera.http.get("/device_authorization")
    assert get.status_code == 405
    for device_code in ("", "x" * 5000, "not-a-code"):
        answer = await tessera.http.post("/token", data={
            "grant_type": GRANT_DEVICE_CODE, "device_code": device_code,
            "client_id": app.client_id})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] in ("invalid_request", "invalid_grant")
    missing = await tessera.http.post("/token", data={"grant_type": GRANT_DEVICE_CODE,
                                                      "client_id": app.client_id})
    assert missing.json()["error"] == "invalid_request"
    other = await _device_client(tessera)
    started = await _authorize_device(tessera, app)
    theirs = await _poll(tessera, other, started["device_code"])
    assert theirs.status_code == 400 and theirs.json()["error"] == "invalid_grant"
    no_grant = await tessera.client(grants=("refresh_token",), public=True)
    assert (await _poll(tessera, no_grant, started["device_code"])).json()["error"] == \
        "unauthorized_client"


async def test_bad_input_at_the_device_page(tessera: TesseraDriver) -> None:
    page = await tessera.http.get("/device")
    assert page.status_code == 200 and "Enter the code" in page.text
    assert page.headers["cache-control"] == "no-store"
    fields = form_fields(page.text)
    for typed in ("", "BCDF", "AEIO-UAEI", "<script>", "B" * 40):
        answer = await tessera.http.post("/device", data=fields | {"user_code": typed})
        assert answer.status_code == 400 and "<script>" not in answer.text
    forged = await tessera.http.post("/device", data={"step": "code", "user_code": "BCDF-GHJK"})
    assert forged.status_code == 400 and "expired" in forged.text
    cross = await tessera.http.post("/device", data=fields | {"user_code": "BCDF-GHJK"},
                                    headers={"origin": "https://evil.example"})
    assert cross.status_code == 400
    weird = await tessera.http.post("/device", data=fields | {"step": "launch"})
    assert weird.status_code == 400
    anonymous = await tessera.http.post("/device", data={"step": "approve",
                                                         "user_code": "BCDF-GHJK"})
    assert anonymous.status_code == 400


async def test_guessing_user_codes_is_rate_limited(tessera: TesseraDriver,
                                                   identity: Identity) -> None:
    app = await _device_client(tessera)
    started = await _authorize_device(tessera, app)
    page = await tessera.http.get("/device")
    fields = form_fields(page.text)
    limit = identity.settings.device.user_code_attempts_per_minute
    for _ in range(limit):
        guess = await tessera.http.post("/device", data=fields | {"user_code": "BBBB-BBBB"})
        assert guess.status_code == 400
    blocked = await tessera.http.post("/device", data=fields | {
        "user_code": started["user_code"]})  # even the right code, once throttled
    assert blocked.status_code == 429 and "Too many attempts" in blocked.text


async def test_a_user_of_another_tenant_cannot_approve(tessera: TesseraDriver) -> None:
    app = await _device_client(tessera, tenant="acme")
    await tessera.user("mallory", tenant="default")
    started = await _authorize_device(tessera, app)
    login = await _enter_code(tessera.http, started["user_code"])
    wrong = await _sign_in(tessera.http, login, username="mallory")
    assert wrong.status_code == 401  # mallory does not exist in acme
    # signed in elsewhere in the default tenant: the acme code still asks for an acme login
    web = await tessera.web_client()
    await tessera.login_tokens(web, username="mallory")
    again = await _enter_code(tessera.http, started["user_code"])
    assert "Sign in to connect a device" in again.text
    assert (await _poll(tessera, app, started["device_code"])).json()["error"] == \
        "authorization_pending"


async def test_clients_opt_in_with_the_short_alias(tessera: TesseraDriver) -> None:
    app = await tessera.client(grants=("device_code",), public=True)
    client = await tessera.identity.clients.get(app.client_id)
    assert client is not None and client.grant_types == frozenset({GRANT_DEVICE_CODE})


async def test_codes_are_stored_only_as_hashes(tessera: TesseraDriver,
                                               identity: Identity) -> None:
    app = await _device_client(tessera)
    started = await _authorize_device(tessera, app)
    path = identity.settings.data_dir
    assert path.exists()
    raw = b"".join(p.read_bytes() for p in path.rglob("*.db*") if p.is_file())
    assert started["device_code"].encode() not in raw
    assert started["user_code"].replace("-", "").encode() not in raw


async def test_users_with_two_step_verification_give_their_code(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    app = await _device_client(tessera)
    await tessera.user()
    user = await identity.login.authenticate("default", "alice", PASSWORD, client_host=None)
    enrolment = await identity.totp.begin_enrolment(user)
    assert enrolment is not None
    await identity.totp.confirm_enrolment(user, pyotp.TOTP(enrolment.secret).at(
        int(clock.now())))
    clock.advance(30)
    started = await _authorize_device(tessera, app)
    login = await _enter_code(tessera.http, started["user_code"])
    wrong = await _sign_in(tessera.http, login, password="wrong password")
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    no_code = await _sign_in(tessera.http, login)
    assert no_code.status_code == 401 and "one-time code" in no_code.text
    consent = await tessera.http.post("/device", data=form_fields(login.text) | {
        "username": "alice", "password": PASSWORD,
        "totp_code": pyotp.TOTP(enrolment.secret).at(int(clock.now()))})
    done = await _decide(tessera.http, consent, "approve")
    assert done.status_code == 200
    tokens = (await _poll(tessera, app, started["device_code"])).json()
    assert claims_of(tokens["access_token"])["acr"] == "urn:tessera:acr:mfa"
