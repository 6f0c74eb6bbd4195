"""RFC 9470 step-up on the resource side: ``min_acr``/``max_auth_age`` in the policy, the
pure verify's ``StepUpRequired``, the exact ``WWW-Authenticate`` challenge from the ASGI
middleware, the FastAPI dependency and the plain API, and agreement with the gateway."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.core.acr import ACR_MFA, ACR_PASSWORD, DEFAULT_ACR_LEVELS
from tessera.gateway import Rule, decide
from tessera.gateway.policy import AcrLevels
from tessera.verifier import (
    Denied,
    KeySet,
    Reason,
    StepUpRequired,
    VerifiedToken,
    verify_access_token,
)
from tessera.verifier._bearer import denial_response
from tessera.verifier.asgi import RouteRule, VerifierMiddleware
from tessera.verifier.fastapi import install, require_acr
from tessera.verifier.service import VerifierService

from ._services import bearer
from ._support import DROP, NOW, Minter, empty_state, policy

ACR_CHALLENGE = ('Bearer error="insufficient_user_authentication", error_description="A '
                 'different authentication level is required.", '
                 'acr_values="urn:tessera:acr:mfa"')
AGE_CHALLENGE = ('Bearer error="insufficient_user_authentication", error_description="More '
                 'recent authentication is required.", max_age="300"')
BOTH_CHALLENGE = ('Bearer error="insufficient_user_authentication", error_description="A '
                  'different authentication level is required.", '
                  'acr_values="urn:tessera:acr:mfa", max_age="300"')


def verify(minter: Minter, keys: KeySet, *, now: float = NOW, policy_kw: dict[str, Any],
           **claims: Any) -> VerifiedToken:
    return verify_access_token(minter.mint(**claims), keys=keys, policy=policy(**policy_kw),
                               revocation_state=empty_state(), now=now)


def refused(minter: Minter, keys: KeySet, **kw: Any) -> StepUpRequired:
    with pytest.raises(StepUpRequired) as caught:
        verify(minter, keys, **kw)
    return caught.value


# -- the pure core ------------------------------------------------------------------------


@pytest.mark.parametrize("acr", [ACR_PASSWORD, DROP, "urn:other:acr"])
def test_an_acr_below_min_acr_is_a_step_up_refusal(minter: Minter, keys: KeySet,
                                                   acr: Any) -> None:
    denied = refused(minter, keys, policy_kw={"min_acr": ACR_MFA}, acr=acr)
    assert denied.reason is Reason.INSUFFICIENT_USER_AUTHENTICATION
    assert (denied.error, denied.status) == ("insufficient_user_authentication", 401)
    assert denied.label == "acr_too_low" and not denied.too_old
    assert (denied.acr_values, denied.max_age) == (ACR_MFA, None)
    assert denied.description == "A different authentication level is required."


def test_the_same_or_a_stronger_acr_passes(minter: Minter, keys: KeySet) -> None:
    assert verify(minter, keys, policy_kw={"min_acr": ACR_MFA}, acr=ACR_MFA).acr == ACR_MFA
    assert verify(minter, keys, policy_kw={"min_acr": ACR_PASSWORD}, acr=ACR_MFA)
    assert verify(minter, keys, policy_kw={"min_acr": ACR_PASSWORD}, acr=ACR_PASSWORD)
    assert verify(minter, keys, policy_kw={}, acr=DROP)  # no requirement, no check


def test_max_auth_age_judges_auth_time_with_the_leeway(minter: Minter, keys: KeySet) -> None:
    strict = {"max_auth_age": 300, "leeway": 0}
    assert verify(minter, keys, policy_kw=strict, auth_time=int(NOW) - 300)
    old = refused(minter, keys, policy_kw=strict, auth_time=int(NOW) - 301)
    assert old.label == "auth_too_old" and old.too_old
    assert old.description == "More recent authentication is required."
    assert (old.acr_values, old.max_age) == (None, 300)
    assert verify(minter, keys, policy_kw={"max_auth_age": 300, "leeway": 30},
                  auth_time=int(NOW) - 330)
    assert refused(minter, keys, policy_kw=strict, auth_time=DROP).too_old


def test_the_acr_is_judged_before_the_age_and_the_challenge_names_both(
        minter: Minter, keys: KeySet) -> None:
    both = {"min_acr": ACR_MFA, "max_auth_age": 300}
    weak_and_old = refused(minter, keys, policy_kw=both, acr=ACR_PASSWORD,
                           auth_time=int(NOW) - 900)
    assert weak_and_old.label == "acr_too_low"
    assert (weak_and_old.acr_values, weak_and_old.max_age) == (ACR_MFA, 300)
    assert refused(minter, keys, policy_kw=both, acr=ACR_MFA,
                   auth_time=int(NOW) - 900).label == "auth_too_old"


def test_scopes_are_judged_before_the_authentication(minter: Minter, keys: KeySet) -> None:
    with pytest.raises(Denied) as caught:
        verify(minter, keys, policy_kw={"min_acr": ACR_MFA,
                                        "required_scopes": frozenset({"admin"})})
    assert caught.value.reason is Reason.INSUFFICIENT_SCOPE


def test_the_acr_ordering_is_configurable(minter: Minter, keys: KeySet) -> None:
    levels = ("urn:a:bronze", "urn:a:silver", "urn:a:gold")
    kw = {"acr_levels": levels, "min_acr": "urn:a:silver"}
    assert verify(minter, keys, policy_kw=kw, acr="urn:a:gold")
    assert verify(minter, keys, policy_kw=kw, acr="urn:a:silver")
    for weak in ("urn:a:bronze", ACR_MFA):  # a value not in the ordering satisfies nothing
        assert refused(minter, keys, policy_kw=kw, acr=weak).acr_values == "urn:a:silver"


@pytest.mark.parametrize("kw", [
    {"min_acr": "urn:tessera:acr:gold"},
    {"acr_levels": ("a", "a")},
    {"acr_levels": ('quo"te',)},
    {"acr_levels": ("with space",)},
    {"max_auth_age": -1},
])
def test_a_policy_that_could_never_be_met_or_sent_is_refused(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        policy(**kw)


def test_the_default_ordering_is_the_identity_services() -> None:
    assert policy().acr_levels == DEFAULT_ACR_LEVELS == (ACR_PASSWORD, ACR_MFA)


# -- the challenge ------------------------------------------------------------------------


@pytest.mark.parametrize(("kw", "expected"), [
    ({"too_old": False, "acr_values": ACR_MFA, "max_age": None}, ACR_CHALLENGE),
    ({"too_old": True, "acr_values": None, "max_age": 300}, AGE_CHALLENGE),
    ({"too_old": False, "acr_values": ACR_MFA, "max_age": 300}, BOTH_CHALLENGE),
])
def test_the_rfc9470_challenge_is_exact(kw: dict[str, Any], expected: str) -> None:
    status, headers, body = denial_response(StepUpRequired(**kw))
    assert status == 401
    assert dict(headers)["www-authenticate"] == expected
    assert dict(headers)["cache-control"] == "no-store"
    assert body.startswith(b'{"error":"insufficient_user_authentication"')


def test_the_sdk_and_the_gateway_send_the_same_challenge(minter: Minter,
                                                         keys: KeySet) -> None:
    """Same ordering, same rules (acr first, max_age with leeway), same header text. The
    gateway answers 403 where the SDK answers 401 (RFC 9470 §3's status)."""
    levels = AcrLevels(DEFAULT_ACR_LEVELS)
    cases = [({"acr": ACR_PASSWORD}, ACR_MFA, None), ({"auth_time": int(NOW) - 900}, None, 300),
             ({"acr": ACR_PASSWORD}, ACR_MFA, 300), ({"acr": ACR_MFA}, ACR_MFA, 300)]
    for claims, acr, max_age in cases:
        token = verify(minter, keys, policy_kw={}, **claims)
        gateway = decide(Rule(index=0, acr=acr, max_age=max_age), token, acr_levels=levels,
                         now=NOW, leeway=30)
        try:
            verify(minter, keys, policy_kw={"min_acr": acr, "max_auth_age": max_age},
                   **claims)
        except StepUpRequired as denied:
            _, headers, _ = denial_response(denied)
            assert gateway.challenge == dict(headers)["www-authenticate"], claims
            assert gateway.reason == denied.label
        else:
            assert gateway.allowed, claims


# -- middleware, dependency, plain API ------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"acr": request.state.tessera_token.acr})


async def test_middleware_route_rules_answer_with_the_challenge(
        service: VerifierService, minter: Minter) -> None:
    app = Starlette(routes=[Route("/payouts", whoami), Route("/recent", whoami),
                            Route("/orders", whoami)])
    guarded = VerifierMiddleware(app, service, routes=[
        RouteRule("/payouts", min_acr=ACR_MFA, max_auth_age=300),
        RouteRule("/recent", max_auth_age=300, scopes=frozenset({"orders:read"})),
    ])
    transport = httpx.ASGITransport(app=guarded)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        weak = await client.get("/payouts", headers=bearer(minter.mint()))
        assert weak.status_code == 401
        assert weak.headers["www-authenticate"] == BOTH_CHALLENGE
        assert weak.json() == {"error": "insufficient_user_authentication",
                               "error_description": "A different authentication level is "
                                                    "required."}
        strong = await client.get("/payouts", headers=bearer(minter.mint(acr=ACR_MFA)))
        assert strong.status_code == 200 and strong.json() == {"acr": ACR_MFA}
        old = await client.get("/recent", headers=bearer(minter.mint(
            auth_time=int(NOW) - 900)))
        assert old.status_code == 401 and old.headers["www-authenticate"] == AGE_CHALLENGE
        assert (await client.get("/orders", headers=bearer(minter.mint()))).status_code == 200
    labels = {(s.labels["outcome"], s.labels["reason"])
              for metric in service.registry.collect() for s in metric.samples
              if s.name == "tessera_verifier_decisions_total" and s.value}
    assert ("denied", "acr_too_low") in labels and ("denied", "auth_too_old") in labels


def test_a_route_rule_with_an_unknown_acr_fails_at_startup(service: VerifierService) -> None:
    with pytest.raises(ValueError, match="acr_levels"):
        VerifierMiddleware(Starlette(), service,
                           routes=[RouteRule("/x", min_acr="urn:tessera:acr:gold")])


async def test_require_acr_dependency(service: VerifierService, minter: Minter) -> None:
    app = FastAPI()
    install(app, service)

    @app.post("/payouts")
    async def payout(token: Annotated[VerifiedToken, Depends(
            require_acr(ACR_MFA, max_auth_age=300, scopes=["orders:write"]))]) -> str:
        return token.sub

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        weak = await client.post("/payouts", headers=bearer(minter.mint()))
        assert weak.status_code == 401
        assert weak.headers["www-authenticate"] == BOTH_CHALLENGE
        assert weak.json()["error"] == "insufficient_user_authentication"
        ok = await client.post("/payouts", headers=bearer(minter.mint(acr=ACR_MFA)))
        assert ok.status_code == 200 and ok.json() == "user-1"
        narrow = await client.post("/payouts", headers=bearer(minter.mint(
            acr=ACR_MFA, scope="orders:read")))
        assert narrow.status_code == 403  # scopes first: 403 insufficient_scope


async def test_the_plain_api_raises_step_up_required(service: VerifierService,
                                                     minter: Minter) -> None:
    with pytest.raises(StepUpRequired) as caught:
        await service.check(minter.mint(), min_acr=ACR_MFA)
    assert caught.value.acr_values == ACR_MFA
    token = await service.check(minter.mint(acr=ACR_MFA), min_acr=ACR_MFA, max_auth_age=300)
    assert token.acr == ACR_MFA
