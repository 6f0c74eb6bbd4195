"""The logout tokens Tessera signs meet every rule of OIDC Back-Channel Logout 1.0 §2.4 /
§2.6, checked by the suite's relying party (joserfc against ``/jwks``) — and that
relying party really refuses a token breaking any one rule, so its acceptance means
something."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tessera.core.signals import BACKCHANNEL_LOGOUT_EVENT
from tessera.keys import KeyRing, KeyState, new_signing_key
from tessera.protocol.oidc.backchannel import logout_token
from tests.e2e.signals_world import LOOP, World
from tests.signals_receivers import Invalid, RelyingParty


def _party(world: World, **kw: Any) -> RelyingParty:
    return RelyingParty("c_rp", LOOP, world.jwks, time.time, **kw)


def _sign(world: World, claims: dict[str, Any], typ: str = "logout+jwt",
          ring: KeyRing | None = None) -> str:
    return (ring or world.identity.keys.ring).sign(claims, typ=typ)


def _good(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": LOOP, "aud": "c_rp", "iat": now, "exp": now + 120,
                              "jti": "j-1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
                              "sub": "u-1", "sid": "s-1"}
    for key, value in changes.items():
        if value is None:
            claims.pop(key)
        else:
            claims[key] = value
    return claims


def test_tessera_logout_tokens_pass_every_rule(world: World) -> None:
    token = logout_token(world.identity.keys.ring, issuer=LOOP, client_id="c_rp", jti="j",
                         iat=int(time.time()), ttl=120, sub="u-1", sid="s-1")
    header, claims = _party(world, session_required=True).validate(token)
    assert header["typ"] == "logout+jwt" and header["kid"]
    assert set(claims) == {"iss", "aud", "iat", "exp", "jti", "events", "sub", "sid"}
    with pytest.raises(ValueError):
        logout_token(world.identity.keys.ring, issuer=LOOP, client_id="c", jti="j", iat=0,
                     ttl=1, sub=None, sid=None)


_EXPIRED = object()
"""Stands for an ``exp`` an hour ago, computed when the test runs (collection may be
minutes earlier on a loaded machine)."""


@pytest.mark.parametrize(("changes", "typ", "rule"), [
    ({}, "JWT", "wrong typ"),
    ({"iss": "https://evil.example"}, "logout+jwt", "claims"),
    ({"aud": "c_other"}, "logout+jwt", "claims"),
    ({"iat": None}, "logout+jwt", "claims"),
    ({"jti": None}, "logout+jwt", "claims"),
    ({"exp": None}, "logout+jwt", "exp"),
    ({"exp": _EXPIRED}, "logout+jwt", "exp"),
    ({"events": None}, "logout+jwt", "events"),
    ({"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}}, "logout+jwt", "events"),
    ({"events": {"https://other/event": {}}}, "logout+jwt", "events"),
    ({"sub": None, "sid": None}, "logout+jwt", "neither sub nor sid"),
    ({"nonce": "n"}, "logout+jwt", "nonce"),
])
def test_the_relying_party_refuses_a_token_breaking_any_rule(
        world: World, changes: dict[str, Any], typ: str, rule: str) -> None:
    changes = {key: int(time.time()) - 3600 if value is _EXPIRED else value
               for key, value in changes.items()}
    with pytest.raises(Invalid, match=rule):
        _party(world).validate(_sign(world, _good(**changes), typ))


def test_sid_is_required_when_the_client_asked_for_it(world: World) -> None:
    with pytest.raises(Invalid, match="sid required"):
        _party(world, session_required=True).validate(_sign(world, _good(sid=None)))


def test_a_key_outside_the_jwks_is_refused(world: World) -> None:
    stranger = KeyRing([new_signing_key("ES256", state=KeyState.ACTIVE, now=time.time())])
    with pytest.raises(Invalid, match="signature"):
        _party(world).validate(_sign(world, _good(), ring=stranger))
