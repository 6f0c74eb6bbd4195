"""verify_access_token: acceptance, and every rejection reason including the JWT attacks."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tessera.verifier import Denied, KeySet, Reason, VerificationPolicy, verify_access_token
from tessera.verifier.revocation import RevocationState

from ._support import AUDIENCE, DROP, ISSUER, NOW, Minter, b64, generate, policy, public_jwk


def verify(
    token: str,
    keys: KeySet,
    *,
    pol: VerificationPolicy | None = None,
    state: RevocationState | None = None,
    now: float = NOW,
) -> Any:
    if state is None:
        state = RevocationState()
    return verify_access_token(
        token, keys=keys, policy=pol or policy(), revocation_state=state, now=now
    )


def reason_of(token: str, keys: KeySet, **kwargs: Any) -> Reason:
    with pytest.raises(Denied) as info:
        verify(token, keys, **kwargs)
    return info.value.reason


# -- acceptance -------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["rs-1", "es-1", "ed-1"])
def test_accepts_a_valid_token_for_every_algorithm(minter: Minter, keys: KeySet, kid: str) -> None:
    token = minter.mint(kid, cnf={"jkt": "thumb"}, act={"sub": "admin-7"})
    verified = verify(token, keys)
    assert verified.kid == kid
    assert verified.alg == minter.keys[kid][0]
    assert verified.iss == ISSUER and verified.sub == "user-1"
    assert verified.aud == (AUDIENCE, "billing")
    assert verified.scopes == {"orders:read", "orders:write"}
    assert (verified.sid, verified.sv, verified.tid) == ("sid-1", 1, "tenant-1")
    assert verified.amr == ("pwd",) and verified.acr == "urn:tessera:acr:pwd"
    assert verified.cnf_jkt == "thumb"
    assert verified.act == {"sub": "admin-7"}
    assert verified.claims["client_id"] == "client-1"


def test_accepts_string_audience_and_application_typ(minter: Minter, keys: KeySet) -> None:
    token = minter.mint(aud=AUDIENCE, typ="application/at+JWT")
    assert verify(token, keys).aud == (AUDIENCE,)


def test_client_credentials_token_without_session(minter: Minter, keys: KeySet) -> None:
    token = minter.mint(sid=DROP, sv=DROP, acr=DROP, amr=DROP, auth_time=DROP, nbf=DROP)
    verified = verify(token, keys)
    assert verified.sid is None and verified.sv is None and verified.nbf is None


def test_denied_carries_oauth_error_and_status(minter: Minter, keys: KeySet) -> None:
    with pytest.raises(Denied) as info:
        verify(minter.mint(scope="orders:read"), keys, pol=policy(required_scopes={"admin"}))
    assert (info.value.error, info.value.status) == ("insufficient_scope", 403)
    assert "admin" in info.value.detail and "admin" not in info.value.description
    with pytest.raises(Denied) as info:
        verify(minter.mint(exp=int(NOW) - 100), keys)
    assert (info.value.error, info.value.status) == ("invalid_token", 401)


# -- header and signature ----------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c", "!!!.e30.", "x" * 9000, "W10.e30.e30"],
)
def test_malformed(keys: KeySet, token: str) -> None:
    assert reason_of(token, keys) is Reason.MALFORMED


def test_non_string_token_is_malformed(keys: KeySet) -> None:
    assert reason_of(b"a.b.c", keys) is Reason.MALFORMED  # type: ignore[arg-type]


def test_missing_kid_is_malformed(minter: Minter, keys: KeySet) -> None:
    _, key = minter.keys["rs-1"]
    token = jwt.encode(minter.claims(), key, algorithm="RS256", headers={"typ": "at+jwt"})
    assert reason_of(token, keys) is Reason.MALFORMED


@pytest.mark.parametrize(
    "overrides",
    [{"iss": DROP}, {"sub": 42}, {"aud": []}, {"aud": [1]}, {"exp": "soon"}, {"exp": True},
     {"jti": DROP}, {"client_id": DROP}, {"tid": DROP}, {"scope": ["a"]}, {"sv": DROP},
     {"sv": "1"}, {"sid": DROP}, {"amr": "pwd"}, {"cnf": "x"}, {"act": ["x"]}],
)
def test_bad_claim_shapes_are_malformed(minter: Minter, keys: KeySet, overrides: Any) -> None:
    assert reason_of(minter.mint(**overrides), keys) is Reason.MALFORMED


def test_payload_that_is_not_an_object_is_malformed(minter: Minter, keys: KeySet) -> None:
    _, key = minter.keys["ed-1"]
    token = jwt.api_jws.encode(b"[1, 2]", key, algorithm="EdDSA",
                               headers={"kid": "ed-1", "typ": "at+jwt"})
    assert reason_of(token, keys) is Reason.MALFORMED


def test_unknown_kid(minter: Minter, keys: KeySet) -> None:
    minter.keys["rs-new"] = ("RS256", minter.keys["rs-1"][1])
    assert reason_of(minter.mint("rs-new"), keys) is Reason.UNKNOWN_KID


def test_missing_alg_is_bad_algorithm(keys: KeySet) -> None:
    assert reason_of("e30.e30.e30", keys) is Reason.BAD_ALGORITHM


@pytest.mark.parametrize("alg", [["EdDSA"], {"a": 1}, 256, None])
def test_a_non_string_alg_is_bad_algorithm_not_a_crash(keys: KeySet, alg: object) -> None:
    """Found by tests/fuzz/fuzz_access_token.py: ``"alg": [...]`` raised TypeError
    (unhashable) in the allowlist lookup."""
    header = b64(json.dumps({"alg": alg, "kid": "ed-1", "typ": "at+jwt"}).encode())
    assert reason_of(f"{header}.e30.c2ln", keys) is Reason.BAD_ALGORITHM


def test_alg_none_is_rejected(minter: Minter, keys: KeySet) -> None:
    token = jwt.encode(minter.claims(), "", algorithm="none",
                       headers={"kid": "rs-1", "typ": "at+jwt"})
    assert reason_of(token, keys) is Reason.BAD_ALGORITHM
    assert reason_of(token.rsplit(".", 1)[0] + ".c2ln", keys) is Reason.BAD_ALGORITHM


@pytest.mark.parametrize("secret_form", ["pem", "jwk"])
def test_hs256_with_public_key_as_secret_is_rejected(
    minter: Minter, keys: KeySet, secret_form: str
) -> None:
    """Key confusion (RFC 8725 §2.1): an HMAC keyed with the published public key."""
    _, key = minter.keys["rs-1"]
    if secret_form == "pem":
        secret = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        secret = json.dumps(public_jwk(key, kid="rs-1", alg="RS256")).encode()
    header = b64(json.dumps({"alg": "HS256", "kid": "rs-1", "typ": "at+jwt"}).encode())
    payload = b64(json.dumps(minter.claims()).encode())
    signing_input = f"{header}.{payload}".encode()
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    token = f"{header}.{payload}.{b64(mac)}"
    assert reason_of(token, keys) is Reason.BAD_ALGORITHM


def test_header_alg_must_match_the_keys_alg(minter: Minter, keys: KeySet) -> None:
    """An ES256 token naming the RSA key's kid: the key's alg wins, the token is rejected."""
    _, es_key = minter.keys["es-1"]
    token = jwt.encode(minter.claims(), es_key, algorithm="ES256",
                       headers={"kid": "rs-1", "typ": "at+jwt"})
    assert reason_of(token, keys) is Reason.BAD_ALGORITHM


@pytest.mark.parametrize("alg", ["PS256", "RS512", "ES384", "HS512"])
def test_algorithms_outside_the_allowlist(minter: Minter, keys: KeySet, alg: str) -> None:
    header = b64(json.dumps({"alg": alg, "kid": "rs-1", "typ": "at+jwt"}).encode())
    token = f"{header}.{b64(json.dumps(minter.claims()).encode())}.c2ln"
    assert reason_of(token, keys) is Reason.BAD_ALGORITHM


def test_tampered_payload_is_bad_signature(minter: Minter, keys: KeySet) -> None:
    token = minter.mint()
    header, _, signature = token.split(".")
    forged = b64(json.dumps(minter.claims(sub="admin", scope="orders:admin")).encode())
    assert reason_of(f"{header}.{forged}.{signature}", keys) is Reason.BAD_SIGNATURE


def test_signature_by_another_key_with_the_same_kid(minter: Minter, keys: KeySet) -> None:
    attacker = generate("EdDSA")
    embedded = public_jwk(attacker, kid="ed-1", alg="EdDSA")
    token = jwt.encode(minter.claims(), attacker, algorithm="EdDSA",
                       headers={"kid": "ed-1", "typ": "at+jwt", "jwk": embedded})
    assert reason_of(token, keys) is Reason.BAD_SIGNATURE


def test_truncated_signature(minter: Minter, keys: KeySet) -> None:
    token = minter.mint("es-1")
    assert reason_of(token[:-8], keys) in {Reason.BAD_SIGNATURE, Reason.MALFORMED}


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+jwt+x", "id_token+jwt"])
def test_wrong_typ(minter: Minter, keys: KeySet, typ: str | None) -> None:
    assert reason_of(minter.mint(typ=typ), keys) is Reason.WRONG_TYP


# -- claims ------------------------------------------------------------------------------


@pytest.mark.parametrize("iss", [ISSUER + "/", ISSUER.upper(), "https://evil.test", ISSUER + "x"])
def test_wrong_issuer(minter: Minter, keys: KeySet, iss: str) -> None:
    assert reason_of(minter.mint(iss=iss), keys) is Reason.WRONG_ISSUER


@pytest.mark.parametrize("aud", ["billing", ["billing"], [AUDIENCE + "-x"], AUDIENCE.upper()])
def test_wrong_audience(minter: Minter, keys: KeySet, aud: Any) -> None:
    assert reason_of(minter.mint(aud=aud), keys) is Reason.WRONG_AUDIENCE


def test_expiry_with_leeway(minter: Minter, keys: KeySet) -> None:
    token = minter.mint(exp=int(NOW) + 10)
    assert verify(token, keys, now=NOW + 39).jti
    assert reason_of(token, keys, now=NOW + 40) is Reason.EXPIRED
    assert reason_of(token, keys, now=NOW + 10, pol=policy(leeway=0)) is Reason.EXPIRED


def test_nbf_and_future_iat(minter: Minter, keys: KeySet) -> None:
    token = minter.mint(nbf=int(NOW) + 100, iat=int(NOW))
    assert reason_of(token, keys) is Reason.NOT_YET_VALID
    assert verify(token, keys, now=NOW + 70).jti
    future = minter.mint(iat=int(NOW) + 100, nbf=DROP)
    assert reason_of(future, keys) is Reason.NOT_YET_VALID


def test_insufficient_scope(minter: Minter, keys: KeySet) -> None:
    token = minter.mint(scope="orders:read")
    pol = policy(required_scopes=frozenset({"orders:read"}))
    assert verify(token, keys, pol=pol).scopes == {"orders:read"}
    assert reason_of(token, keys, pol=pol.requiring(["orders:write"])) is (
        Reason.INSUFFICIENT_SCOPE
    )
    assert reason_of(minter.mint(scope=DROP), keys, pol=pol) is Reason.INSUFFICIENT_SCOPE


def test_expired_beats_insufficient_scope(minter: Minter, keys: KeySet) -> None:
    token = minter.mint(scope="x", exp=int(NOW) - 100)
    assert reason_of(token, keys, pol=policy(required_scopes={"y"})) is Reason.EXPIRED


# -- revocation --------------------------------------------------------------------------


def _event(seq: int, kind: str, key: str, **data: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "key": key, "at": NOW - 1, "expires_at": NOW + 600,
            "data": data}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_event(1, "token.revoked", "jti-x"), Reason.TOKEN_REVOKED),
        (_event(1, "session.revoked", "sid-1"), Reason.SESSION_REVOKED),
        (_event(1, "family.revoked", "fam-1", sid="sid-1", client_id="client-1"),
         Reason.FAMILY_REVOKED),
        (_event(1, "session.version_bumped", "sid-1", sv=2), Reason.STALE_SESSION_VERSION),
        (_event(1, "user.revoked", "user-1"), Reason.USER_REVOKED),
        (_event(1, "tenant.revoked", "tenant-1"), Reason.TENANT_REVOKED),
        (_event(1, "client.revoked", "client-1"), Reason.CLIENT_REVOKED),
    ],
)
def test_revocation_reasons(
    minter: Minter, keys: KeySet, event: dict[str, Any], reason: Reason
) -> None:
    token = minter.mint(jti="jti-x", iat=int(NOW) - 5)
    state = RevocationState()
    assert verify(token, keys, state=state).jti == "jti-x"
    state.apply(event)
    assert reason_of(token, keys, state=state) is reason


def test_tokens_issued_after_a_user_revocation_are_accepted(minter: Minter, keys: KeySet) -> None:
    state = RevocationState()
    state.apply(_event(1, "user.revoked", "user-1"))
    assert verify(minter.mint(iat=int(NOW)), keys, state=state).sub == "user-1"
    assert reason_of(minter.mint(iat=int(NOW) - 1), keys, state=state) is Reason.USER_REVOKED


def test_current_session_version_is_accepted(minter: Minter, keys: KeySet) -> None:
    state = RevocationState()
    state.apply(_event(1, "session.version_bumped", "sid-1", sv=3))
    assert verify(minter.mint(sv=3), keys, state=state).sv == 3
    assert verify(minter.mint(sv=4), keys, state=state).sv == 4
    assert reason_of(minter.mint(sv=2), keys, state=state) is Reason.STALE_SESSION_VERSION


def test_stale_state_fails_closed_only_when_bounded(minter: Minter, keys: KeySet) -> None:
    token = minter.mint()
    state = RevocationState()
    strict = policy(max_staleness=5)
    assert reason_of(token, keys, state=state, pol=strict) is Reason.STALE_STATE
    state.confirm(NOW - 4)
    assert verify(token, keys, state=state, pol=strict).jti
    assert reason_of(token, keys, state=state, pol=strict, now=NOW + 2) is Reason.STALE_STATE
    assert verify(token, keys, state=state, now=NOW + 2).jti
    with pytest.raises(Denied) as info:
        verify(token, keys, state=state, pol=strict, now=NOW + 2)
    assert (info.value.status, info.value.error) == (503, "temporarily_unavailable")
