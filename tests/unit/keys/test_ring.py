"""KeyRing (sign with the active key, verify by kid with the key's own algorithm and the
expected ``typ``, publish only next/active/retiring) and plan_rotation."""

from __future__ import annotations

import functools
from typing import Any

import jwt
import pytest

from tessera.keys import (
    KeyError_,
    KeyRing,
    KeyState,
    SigningKey,
    TokenInvalid,
    load_signing_key,
    new_signing_key,
    plan_rotation,
)
from tests.vectors.jwt_attacks import compact

NOW = 1_800_000_000.0
ISS = "https://id.example"
CLAIMS = {"iss": ISS, "sub": "u", "aud": "api", "exp": int(NOW) + 300, "iat": int(NOW)}


@functools.cache
def _material(alg: str, n: int) -> SigningKey:
    return new_signing_key(alg, state=KeyState.NEXT, now=NOW - 1000)


def key(state: KeyState, alg: str = "ES256", n: int = 0, *, changed_at: float = NOW - 1000
        ) -> SigningKey:
    base = _material(alg, n)
    return SigningKey(base.kid, alg, state, base.private_key, base.created_at, changed_at)


def verify(ring: KeyRing, token: str, **kw: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"typ": "at+jwt", "issuer": ISS, "audience": "api", "now": NOW,
                               "leeway": 30} | kw
    return ring.verify(token, **options)


def reason(ring: KeyRing, token: str, **kw: Any) -> str:
    with pytest.raises(TokenInvalid) as refused:
        verify(ring, token, **kw)
    return refused.value.reason


# --- the ring -------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_sign_uses_the_active_key_and_verifies(alg: str) -> None:
    active, upcoming = key(KeyState.ACTIVE, alg), key(KeyState.NEXT, alg, 1)
    ring = KeyRing([upcoming, active])
    token = ring.sign(dict(CLAIMS), typ="at+jwt")
    assert jwt.get_unverified_header(token) == {"alg": alg, "kid": active.kid,
                                                "typ": "at+jwt"}
    assert ring.active is active
    assert verify(ring, token) == CLAIMS


def test_every_published_key_verifies_only_its_own_algorithm() -> None:
    """Two keys, two algorithms: a token naming the RS256 kid but signed ES256 with the
    other (real, trusted) key is refused — the kid pins the algorithm."""
    rs, es = key(KeyState.RETIRING, "RS256"), key(KeyState.ACTIVE, "ES256")
    ring = KeyRing([rs, es])
    assert verify(ring, KeyRing([rs.with_state(KeyState.ACTIVE, NOW)]).sign(
        dict(CLAIMS), typ="at+jwt")) == CLAIMS
    mixed = compact({"alg": "ES256", "kid": rs.kid, "typ": "at+jwt"}, CLAIMS,
                    lambda data: jwt.get_algorithm_by_name("ES256").sign(data, es.private_key))
    assert reason(ring, mixed) == "bad_algorithm"
    swapped = compact({"alg": "RS256", "kid": es.kid, "typ": "at+jwt"}, CLAIMS,
                      lambda data: jwt.get_algorithm_by_name("RS256").sign(data,
                                                                           rs.private_key))
    assert reason(ring, swapped) == "bad_algorithm"


def test_unknown_and_retired_kids_are_refused() -> None:
    old = key(KeyState.ACTIVE, n=2)
    token = KeyRing([old]).sign(dict(CLAIMS), typ="at+jwt")
    assert reason(KeyRing([key(KeyState.ACTIVE)]), token) == "unknown_kid"
    ring = KeyRing([key(KeyState.ACTIVE), old.with_state(KeyState.RETIRED, NOW)])
    assert reason(ring, token) == "unknown_kid"
    assert verify(KeyRing([key(KeyState.ACTIVE), old.with_state(KeyState.RETIRING, NOW)]),
                  token) == CLAIMS


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+JWT+x", "application/jwt", ""])
def test_wrong_typ_is_refused(typ: str) -> None:
    ring = KeyRing([key(KeyState.ACTIVE)])
    assert reason(ring, ring.sign(dict(CLAIMS), typ=typ)) == "wrong_typ"


def test_typ_none_skips_the_typ_check_for_id_token_hints() -> None:
    ring = KeyRing([key(KeyState.ACTIVE)])
    assert verify(ring, ring.sign(dict(CLAIMS), typ="JWT"), typ=None) == CLAIMS


@pytest.mark.parametrize(("changes", "kw", "expected"), [
    ({"iss": "https://other.example"}, {}, "wrong_issuer"),
    ({"aud": "other"}, {}, "wrong_audience"),
    ({"exp": int(NOW) - 30}, {}, "expired"),
    ({"nbf": int(NOW) + 31}, {}, "not_yet_valid"),
    ({"iat": int(NOW) + 31}, {}, "issued_in_future"),
    ({"exp": True}, {}, "malformed"),
    ({"iat": None}, {}, "missing_claim"),
])
def test_claim_checks(changes: dict[str, Any], kw: dict[str, Any], expected: str) -> None:
    ring = KeyRing([key(KeyState.ACTIVE)])
    claims = {k: v for k, v in (CLAIMS | changes).items() if v is not None}
    assert reason(ring, ring.sign(claims, typ="at+jwt"), **kw) == expected


def test_leeway_edges() -> None:
    ring = KeyRing([key(KeyState.ACTIVE)])
    ok = {**CLAIMS, "exp": int(NOW) - 29, "nbf": int(NOW) + 30, "iat": int(NOW) + 30}
    assert verify(ring, ring.sign(ok, typ="at+jwt")) == ok
    expired = ring.sign({**CLAIMS, "exp": int(NOW) - 10}, typ="at+jwt")
    assert verify(ring, expired, verify_exp=False)["exp"] == int(NOW) - 10
    assert reason(ring, expired, leeway=0) == "expired"


def test_jwks_publishes_next_active_retiring_never_retired_or_private() -> None:
    keys = [key(KeyState.NEXT, n=1), key(KeyState.ACTIVE), key(KeyState.RETIRING, n=2),
            key(KeyState.RETIRED, n=3)]
    ring = KeyRing(keys)
    published = ring.jwks()["keys"]
    assert {k["kid"] for k in published} == {k.kid for k in keys[:3]} == ring.kids
    for jwk in published:
        assert jwk["alg"] == "ES256" and jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi", "key_ops"} & set(jwk)


@pytest.mark.parametrize("states", [[], [KeyState.NEXT], [KeyState.ACTIVE, KeyState.ACTIVE],
                                    [KeyState.RETIRING, KeyState.RETIRED]])
def test_a_ring_needs_one_active_key_per_algorithm(states: list[KeyState]) -> None:
    with pytest.raises(KeyError_):
        KeyRing([key(s, n=i) for i, s in enumerate(states)])


def test_loading_a_key_round_trips() -> None:
    k = key(KeyState.ACTIVE, "EdDSA")
    loaded = load_signing_key(k.kid, k.alg, "active", k.private_pem(), 1.0, 2.0)
    assert (loaded.kid, loaded.alg, loaded.state) == (k.kid, "EdDSA", KeyState.ACTIVE)
    assert loaded.public_jwk == k.public_jwk


@pytest.mark.parametrize(("alg", "state", "pem_of"), [
    ("ES256", "compromised", "ES256"),
    ("ES256", "active", None),
    ("HS256", "active", "ES256"),
    ("RS256", "active", "ES256"),
    ("ES256", "active", "EdDSA"),
    ("EdDSA", "active", "RS256"),
    ("none", "active", "EdDSA"),
])
def test_loading_a_key_that_does_not_fit_raises_key_error(alg: str, state: str,
                                                          pem_of: str | None) -> None:
    """A stored row whose state, PEM or algorithm is off is refused at load, as a
    ``KeyError_``: the algorithm bound to a key must fit it (RFC 8725 §3.1)."""
    pem = key(KeyState.ACTIVE, pem_of).private_pem() if pem_of else b"not a pem"
    with pytest.raises(KeyError_):
        load_signing_key("kid", alg, state, pem, 1.0, 2.0)


def test_unsupported_algorithm_cannot_be_generated() -> None:
    for alg in ("HS256", "none", "RS512", "PS256"):
        with pytest.raises(KeyError_):
            new_signing_key(alg, state=KeyState.NEXT, now=NOW)


# --- rotation -------------------------------------------------------------------------

RETIRE_AFTER = 330.0


def test_rotation_moves_each_state_one_step() -> None:
    keys = [key(KeyState.NEXT, n=1), key(KeyState.ACTIVE), key(KeyState.RETIRING, n=2),
            key(KeyState.RETIRED, n=3)]
    assert plan_rotation(keys, now=NOW, retire_after=RETIRE_AFTER) == {
        keys[0].kid: KeyState.ACTIVE, keys[1].kid: KeyState.RETIRING,
        keys[2].kid: KeyState.RETIRED}


def test_retiring_key_stays_published_until_its_tokens_expired() -> None:
    """``retire_after`` counts from when the key started retiring (its last signature)."""
    fresh = key(KeyState.RETIRING, n=2, changed_at=NOW - RETIRE_AFTER + 1)
    due = key(KeyState.RETIRING, n=3, changed_at=NOW - RETIRE_AFTER)
    keys = [key(KeyState.NEXT, n=1), key(KeyState.ACTIVE), fresh, due]
    changes = plan_rotation(keys, now=NOW, retire_after=RETIRE_AFTER)
    assert fresh.kid not in changes
    assert changes[due.kid] is KeyState.RETIRED


def test_rotation_without_a_next_key_is_refused() -> None:
    with pytest.raises(KeyError_):
        plan_rotation([key(KeyState.ACTIVE), key(KeyState.RETIRING, n=2)], now=NOW,
                      retire_after=RETIRE_AFTER)


def test_rotated_ring_still_verifies_tokens_of_the_previous_active_key() -> None:
    upcoming, current = key(KeyState.NEXT, n=1), key(KeyState.ACTIVE)
    token = KeyRing([upcoming, current]).sign(dict(CLAIMS), typ="at+jwt")
    changes = plan_rotation([upcoming, current], now=NOW, retire_after=RETIRE_AFTER)
    rotated = KeyRing([k.with_state(changes[k.kid], NOW) for k in (upcoming, current)])
    assert rotated.active.kid == upcoming.kid
    assert verify(rotated, token) == CLAIMS
    assert jwt.get_unverified_header(rotated.sign(dict(CLAIMS), typ="at+jwt"))["kid"] \
        == upcoming.kid


# --- several algorithms -----------------------------------------------------------------

def test_one_active_key_per_algorithm_signs_for_its_purpose() -> None:
    """Access tokens with the primary algorithm, ID tokens with theirs; each verifies
    only with its own key and algorithm (the kid pins it)."""
    es, rs = key(KeyState.ACTIVE, "ES256"), key(KeyState.ACTIVE, "RS256")
    ring = KeyRing([rs, es, key(KeyState.NEXT, "ES256", 1)], primary="ES256")
    assert ring.active is es and ring.active_for("RS256") is rs
    assert ring.algorithms == ("ES256", "RS256")
    access = ring.sign(dict(CLAIMS), typ="at+jwt")
    id_token = ring.sign(dict(CLAIMS), typ="JWT", alg="RS256")
    assert jwt.get_unverified_header(access) == {"alg": "ES256", "kid": es.kid, "typ": "at+jwt"}
    assert jwt.get_unverified_header(id_token) == {"alg": "RS256", "kid": rs.kid, "typ": "JWT"}
    assert verify(ring, access) == CLAIMS
    assert verify(ring, id_token, typ="JWT") == CLAIMS
    assert {k["alg"] for k in ring.jwks()["keys"]} == {"ES256", "RS256"}
    assert ring.active_for("EdDSA") is es  # no EdDSA key: the primary signs


def test_without_a_primary_key_the_oldest_active_key_signs() -> None:
    only = key(KeyState.ACTIVE, "RS256")
    assert KeyRing([only], primary="ES256").active is only


def test_two_active_keys_of_one_algorithm_are_refused() -> None:
    with pytest.raises(KeyError_, match="one active key per algorithm"):
        KeyRing([key(KeyState.ACTIVE, "RS256"), key(KeyState.ACTIVE, "RS256", 1),
                 key(KeyState.ACTIVE, "ES256")])


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
@pytest.mark.parametrize("typ", ["at+jwt", "JWT", ""])
def test_the_signer_writes_what_pyjwt_writes(alg: str, typ: str) -> None:
    """Pre-encoded headers change nothing on the wire: same header bytes and payload as
    ``jwt.encode``; RSA and Ed25519 signatures are deterministic, so whole tokens match;
    an ECDSA one verifies with PyJWT."""
    k = key(KeyState.ACTIVE, alg)
    claims = {**CLAIMS, "scope": "a b", "aud": ["x", "y"], "n": "é"}
    ours = KeyRing([k]).sign(dict(claims), typ=typ)
    theirs = jwt.encode(dict(claims), k.private_key, algorithm=alg,
                        headers={"kid": k.kid, "typ": typ})
    assert ours.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]
    if alg != "ES256":
        assert ours == theirs
    assert jwt.decode(ours, k.private_key.public_key(), algorithms=[alg],
                      options={"verify_aud": False, "verify_exp": False,
                               "verify_iat": False, "verify_nbf": False}) == claims


# --- expectations are checked on every call ---------------------------------------------

def test_times_are_checked_on_every_call() -> None:
    ring = KeyRing([key(KeyState.ACTIVE)])
    token = ring.sign({**CLAIMS, "exp": int(NOW) + 10, "nbf": int(NOW) - 5}, typ="at+jwt")
    assert verify(ring, token)["exp"] == int(NOW) + 10
    assert reason(ring, token, now=NOW + 10, leeway=0) == "expired"
    assert reason(ring, token, now=NOW - 10, leeway=0) == "not_yet_valid"
    late = ring.sign({**CLAIMS, "jti": "iat"}, typ="at+jwt")
    assert verify(ring, late)["jti"] == "iat"
    assert reason(ring, late, now=NOW - 100, leeway=0) == "issued_in_future"
    # remembered by a caller that accepts expired tokens (id_token_hint) is no pass for
    # one that does not
    other = ring.sign({**CLAIMS, "exp": int(NOW) - 100}, typ="at+jwt")
    assert verify(ring, other, verify_exp=False)["exp"] == int(NOW) - 100
    assert reason(ring, other) == "expired"


def test_each_expectation_and_each_byte_counts() -> None:
    """A token remembered for one audience, issuer or typ is checked in full for another;
    a token that differs in any byte is a different token; failures are not remembered."""
    ring = KeyRing([key(KeyState.ACTIVE)])
    token = ring.sign(dict(CLAIMS), typ="at+jwt")
    assert verify(ring, token) == CLAIMS
    assert reason(ring, token, audience="other") == "wrong_audience"
    assert reason(ring, token, issuer="https://other.example") == "wrong_issuer"
    assert reason(ring, token, typ="JWT") == "wrong_typ"
    head, payload, signature = token.split(".")
    flipped = "A" if signature[0] != "A" else "B"
    assert reason(ring, f"{head}.{payload}.{flipped}{signature[1:]}") in {
        "bad_signature", "malformed"}
    assert verify(ring, token) == CLAIMS


def test_a_reloaded_ring_forgets_what_the_old_one_verified() -> None:
    """Rotation replaces the ring: a kid that left it is unknown at once, remembered or
    not."""
    old = key(KeyState.ACTIVE, n=2)
    ring = KeyRing([key(KeyState.ACTIVE), old.with_state(KeyState.RETIRING, NOW)])
    token = KeyRing([old]).sign(dict(CLAIMS), typ="at+jwt")
    assert verify(ring, token) == CLAIMS
    reloaded = KeyRing([key(KeyState.ACTIVE), old.with_state(KeyState.RETIRED, NOW)])
    assert reason(reloaded, token) == "unknown_kid"

