"""The JWT attack corpus, first against the one RFC 9068 validator — called directly as the
identity service does, and through the SDK's ``verify_access_token`` — (each attack gives
its reason, for every supported algorithm), then against the real app: /userinfo,
/admin/sessions, /introspect, /revoke and the token exchange refuse every forgery cleanly
and keep serving."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import jwt
import pytest

from tessera.core.clock import FixedClock
from tessera.identity.compose import Identity
from tessera.keys import KeyRing, KeyState, SigningKey, new_signing_key
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.protocol.rfc9068.validator import RevocationFacts, validate
from tessera.verifier import Denied, KeySet, VerificationPolicy, verify_access_token
from tessera.verifier.revocation import RevocationState
from tests.conftest import ISSUER
from tests.support import AppClient, TesseraDriver
from tests.tokens import claims_of
from tests.unit.gateway import _support as gateway_support
from tests.vectors.jwt_attacks import ATTACKS, GARBAGE, Attack, Forge
from tests.vectors.responses import assert_no_leak, assert_oauth_error

NOW = 1_800_000_000.0
LEEWAY = 30.0
API = "https://api.example"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


# --- the validator, directly and inside the SDK ----------------------------------------

@functools.cache
def _key(alg: str) -> SigningKey:
    return new_signing_key(alg, state=KeyState.ACTIVE, now=NOW)


def _ring_forge(alg: str) -> tuple[KeyRing, Forge]:
    key = _key(alg)
    claims = {"iss": ISSUER, "sub": "u-1", "aud": [API, ISSUER], "exp": int(NOW) + 300,
              "iat": int(NOW), "nbf": int(NOW), "jti": "j-1", "client_id": "c-1",
              "tid": "t-1", "scope": "openid api:read"}
    return KeyRing([key]), Forge(key.private_key, key.kid, alg, claims, NOW, LEEWAY)


@dataclass(frozen=True)
class _Expect:
    issuer: str
    audience: str | None
    leeway: float


def _validator(ring: KeyRing, token: str) -> str:
    """``protocol.rfc9068.validator.validate`` as the identity service runs it."""
    return validate(token, keys=ring.verification_keys, expect=_Expect(ISSUER, ISSUER, LEEWAY),
                    revocation=RevocationFacts(), now=NOW).jti


def _sdk(ring: KeyRing, token: str) -> str:
    """The SDK's ``verify_access_token`` with keys from the ring's JWKS."""
    return verify_access_token(token, keys=KeySet.from_jwks(ring.jwks()),
                               policy=VerificationPolicy(issuer=ISSUER, audience=ISSUER,
                                                         leeway=LEEWAY),
                               revocation_state=RevocationState(), now=NOW).jti


SIDES: dict[str, Callable[[KeyRing, str], str]] = {"validator": _validator, "sdk": _sdk}
ALGS = ["RS256", "ES256", "EdDSA"]


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("alg", ALGS)
def test_the_untouched_token_verifies(side: str, alg: str) -> None:
    """The control: without the attack, the same ingredients verify."""
    ring, forge = _ring_forge(alg)
    assert SIDES[side](ring, forge.sign()) == "j-1"


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_the_validator_refuses_the_attack_with_its_reason(attack: Attack, alg: str,
                                                          side: str) -> None:
    ring, forge = _ring_forge(alg)
    token = attack.build(forge)
    with pytest.raises(TokenRejected) as refused:
        SIDES[side](ring, token)
    assert refused.value.reason == attack.reason, refused.value
    if side == "sdk":
        assert isinstance(refused.value, Denied)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("token", GARBAGE)
def test_the_validator_refuses_garbage_as_malformed_or_unknown(token: str, side: str) -> None:
    ring, _ = _ring_forge("ES256")
    with pytest.raises(TokenRejected) as refused:
        SIDES[side](ring, token)
    assert refused.value.reason in {"malformed", "unknown_kid", "bad_algorithm", "wrong_typ"}


# --- the real app ---------------------------------------------------------------------

@dataclass
class Scene:
    web: AppClient
    user_token: str
    id_token: str
    sid: str
    admin_token: str
    user: Forge
    admin: Forge


def _forge_from(identity: Identity, token: str, now: float) -> Forge:
    key = identity.keys.ring.active
    claims = claims_of(token)
    return Forge(key.private_key, key.kid, key.alg, claims, now,
                 float(identity.settings.tokens.leeway))


async def _scene(tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> Scene:
    web = await tessera.web_client()
    await tessera.user()
    tokens = await tessera.login_tokens(web)
    operator = await tessera.client(scope="tessera:admin", audiences=())
    issued = await tessera.token(operator, grant_type="client_credentials",
                                 scope="tessera:admin")
    assert issued.status_code == 200, issued.text
    admin_token = issued.json()["access_token"]
    sid = claims_of(tokens["access_token"])["sid"]
    return Scene(web, tokens["access_token"], tokens["id_token"], sid, admin_token,
                 _forge_from(identity, tokens["access_token"], clock.now()),
                 _forge_from(identity, admin_token, clock.now()))


def _bearer(token: str) -> dict[str, bytes]:
    return {"authorization": b"Bearer " + token.encode("utf-8")}


async def _userinfo(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/userinfo", headers=_bearer(token))


async def _admin(http: httpx.AsyncClient, token: str, sid: str) -> httpx.Response:
    return await http.post("/admin/sessions", data={"action": "revoke", "sid": sid},
                           headers=_bearer(token))


async def _introspect(http: httpx.AsyncClient, web: AppClient, token: str) -> httpx.Response:
    return await http.post("/introspect", data={"token": token}, auth=web.auth)  # type: ignore[arg-type]


def _assert_invalid_token(response: httpx.Response, token: str) -> None:
    assert_oauth_error(response, 401, "invalid_token", secrets=(token,))
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"'), challenge


async def test_userinfo_refuses_every_forgery_and_keeps_serving(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    scene = await _scene(tessera, identity, clock)
    for attack in ATTACKS:
        token = attack.build(scene.user)
        _assert_invalid_token(await _userinfo(tessera.http, token), token)
    for token in (*GARBAGE, scene.id_token, scene.admin_token):
        _assert_invalid_token(await _userinfo(tessera.http, token), token)
    assert (await _userinfo(tessera.http, scene.user.sign())).status_code == 200
    assert (await _userinfo(tessera.http, scene.user_token)).status_code == 200


async def test_admin_sessions_refuses_every_forgery_and_keeps_serving(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    scene = await _scene(tessera, identity, clock)
    for attack in ATTACKS:
        token = attack.build(scene.admin)
        _assert_invalid_token(await _admin(tessera.http, token, scene.sid), token)
    for token in (*GARBAGE, scene.id_token):
        _assert_invalid_token(await _admin(tessera.http, token, scene.sid), token)
    # No forgery ended the session: the user's token is still good ...
    assert (await _userinfo(tessera.http, scene.user_token)).status_code == 200
    # ... a user token is not an admin token ...
    denied = await _admin(tessera.http, scene.user_token, scene.sid)
    assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
    # ... and the operator's real token works.
    done = await _admin(tessera.http, scene.admin_token, scene.sid)
    assert done.status_code == 200 and done.json() == {"sessions": 1}


async def test_introspection_reports_every_forgery_inactive(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    scene = await _scene(tessera, identity, clock)
    for attack in ATTACKS:
        if attack.audience_checked:
            continue
        token = attack.build(scene.user)
        response = await _introspect(tessera.http, scene.web, token)
        assert response.status_code == 200, (attack.name, response.text)
        assert response.json() == {"active": False}, attack.name
        assert response.headers["cache-control"] == "no-store"
        assert_no_leak(response, token)
    for token in (*GARBAGE, scene.id_token):
        response = await _introspect(tessera.http, scene.web, token)
        assert response.json() == {"active": False}, token[:40]
    real = await _introspect(tessera.http, scene.web, scene.user.sign())
    assert real.json()["active"] is True


async def test_revoking_a_forgery_revokes_nothing(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    """RFC 7009 §2.2: an invalid token gets 200 and no effect. The forgeries carry the
    real token's ``jti``: had one been trusted, the real token would now be revoked."""
    scene = await _scene(tessera, identity, clock)
    for attack in ATTACKS:
        if attack.audience_checked:
            continue  # validly signed by us: revocation does not care about the audience
        token = attack.build(scene.user)
        response = await tessera.http.post("/revoke", data={"token": token},
                                           auth=scene.web.auth)  # type: ignore[arg-type]
        assert response.status_code == 200, (attack.name, response.text)
        assert_no_leak(response, token)
    for token in (*GARBAGE, scene.id_token):
        response = await tessera.http.post("/revoke", data={"token": token},
                                           auth=scene.web.auth)  # type: ignore[arg-type]
        assert response.status_code == 200, (token[:40], response.text)
    assert (await tessera.introspect(scene.web, scene.user_token))["active"] is True
    revoked = await tessera.http.post("/revoke", data={"token": scene.user_token},
                                      auth=scene.web.auth)  # type: ignore[arg-type]
    assert revoked.status_code == 200
    assert (await tessera.introspect(scene.web, scene.user_token)) == {"active": False}


async def test_expiry_is_enforced_on_the_injected_clock_with_bounded_leeway(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    scene = await _scene(tessera, identity, clock)
    exp = claims_of(scene.user_token)["exp"]
    leeway = identity.settings.tokens.leeway
    assert leeway <= 60  # DESIGN §9
    clock.advance(exp + leeway - 1 - clock.now())
    assert (await _userinfo(tessera.http, scene.user_token)).status_code == 200
    clock.advance(1)
    _assert_invalid_token(await _userinfo(tessera.http, scene.user_token), scene.user_token)
    _assert_invalid_token(await _admin(tessera.http, scene.admin_token, scene.sid),
                          scene.admin_token)
    assert (await tessera.introspect(scene.web, scene.user_token)) == {"active": False}
    fresh = await tessera.token(scene.web, grant_type="refresh_token",
                                refresh_token=(await tessera.login_tokens(scene.web))
                                ["refresh_token"])
    assert fresh.status_code == 200, fresh.text


async def test_an_id_token_is_not_an_access_token(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    """RFC 9068 §4 / RFC 8725 §3.11: ``typ`` keeps token kinds apart."""
    scene = await _scene(tessera, identity, clock)
    assert jwt.get_unverified_header(scene.id_token)["typ"] != "at+jwt"
    _assert_invalid_token(await _userinfo(tessera.http, scene.id_token), scene.id_token)
    assert (await tessera.introspect(scene.web, scene.id_token)) == {"active": False}


MALFORMED_AUTHORIZATION = ("Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz",
                           "Token abc", "bearer", "Bearer a b", "Bearer " + "A" * 100_000)


async def test_malformed_bearer_headers_are_refused(tessera: TesseraDriver) -> None:
    for header in (*MALFORMED_AUTHORIZATION, None):
        headers = {"authorization": header} if header is not None else {}
        for response in (
            await tessera.http.get("/userinfo", headers=headers),
            await tessera.http.post("/admin/sessions", data={"action": "revoke", "sid": "x"},
                                    headers=headers),
        ):
            assert_oauth_error(response, 401, "invalid_token",
                               secrets=((header or "")[7:],))


async def test_oversized_tokens_are_refused_not_parsed(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    """A validly signed 100 KB token: refused by size at userinfo/admin, and too large a
    body at introspection/revocation (16 KB limit) — never a 5xx."""
    scene = await _scene(tessera, identity, clock)
    big = scene.user.sign(scene.user.with_claims(padding="x" * 100_000))
    _assert_invalid_token(await _userinfo(tessera.http, big), big)
    _assert_invalid_token(await _admin(tessera.http, big, scene.sid), big)
    for path in ("/introspect", "/revoke"):
        response = await tessera.http.post(path, data={"token": big},
                                           auth=scene.web.auth)  # type: ignore[arg-type]
        assert_oauth_error(response, 400, "invalid_request", secrets=(big,))
    assert (await _userinfo(tessera.http, scene.user_token)).status_code == 200


async def test_token_exchange_refuses_every_forged_subject_token(
        tessera: TesseraDriver, identity: Identity, clock: FixedClock) -> None:
    """RFC 8693 §2.2.2: a forged subject token is ``invalid_grant``, never exchanged."""
    scene = await _scene(tessera, identity, clock)
    exchanger = await tessera.client(grants=(EXCHANGE,), scope="openid api:read",
                                     audiences=("https://orders.internal",),
                                     subject_audiences=(API, ISSUER))

    async def exchange(token: str) -> httpx.Response:
        return await tessera.token(exchanger, grant_type=EXCHANGE, subject_token=token,
                                   subject_token_type=ACCESS_TOKEN_TYPE,
                                   audience="https://orders.internal")

    for attack in ATTACKS:
        token = attack.build(scene.user)
        if attack.audience_checked:
            continue  # any audience the exchanger trusts is fine
        assert_oauth_error(await exchange(token), 400, "invalid_grant", secrets=(token,))
    for token in (*GARBAGE, scene.id_token):
        assert_oauth_error(await exchange(token), 400, "invalid_grant", secrets=(token,))
    assert (await exchange(scene.user.sign())).status_code == 200


async def test_the_gateway_refuses_every_forgery() -> None:
    """The edge gateway (forward-auth, the SDK inside) refuses what the validator does."""
    forge = Forge(gateway_support._KEY, "ed-1", "EdDSA", gateway_support.claims(),
                  gateway_support.NOW, 60.0)
    async with gateway_support.gateway() as gw:
        for attack in ATTACKS:
            if attack.audience_checked:
                continue  # the corpus' "wrong" audience is this gateway's own
            token = attack.build(forge)
            response = await gw.nginx("/orders/1", token=token)
            assert response.status_code == 401, (attack.name, response.text)
            assert response.json()["error"] == "invalid_token", attack.name
            assert token not in response.text
        assert (await gw.nginx("/orders/1", token=forge.sign())).status_code == 200
