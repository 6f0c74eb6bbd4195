"""RFC 9449 proof checking (``tessera.protocol.rfc9449``), without a web framework. Every
proof is built by PyJWT or joserfc (``tests.dpop_client``), never by the code under test."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest

from tessera.core.clock import FixedClock
from tessera.protocol.rfc9449 import (
    BEARER,
    DPOP,
    BindingMismatch,
    InvalidProof,
    MemoryReplayCache,
    NonceIssuer,
    ProofChecker,
    ProofReplayed,
    ReplayCacheUnavailable,
    UseNonce,
    access_token_hash,
    challenge,
    check_proof,
    jwk_thumbprint,
    normalize_htu,
)
from tests.dpop_client import DPoPKey, ath_of, joserfc_proof

NOW = 1_800_000_000.0
URL = "https://id.tessera.test/token"
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
         "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YG"
         "jQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt"
         "-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDK"
         "gw",
    "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
}


@pytest.fixture(scope="module")
def keys() -> dict[str, DPoPKey]:
    return {alg: DPoPKey(alg) for alg in ("ES256", "EdDSA", "RS256")}


@pytest.fixture
def key(keys: dict[str, DPoPKey]) -> DPoPKey:
    return keys["ES256"]


def reason(exc: pytest.ExceptionInfo[InvalidProof]) -> str:
    return exc.value.reason


# -- thumbprints and hashes ------------------------------------------------------------


def test_thumbprint_is_the_rfc_7638_example() -> None:
    assert jwk_thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_ath_is_base64url_sha256_of_the_token() -> None:
    # RFC 9449 §7.1 example: the token "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU" has
    # ath "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    assert access_token_hash(token) == ath_of(token)


# -- the stateless checks (§4.3) -------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_a_valid_proof_yields_its_key_thumbprint(keys: dict[str, DPoPKey], alg: str) -> None:
    key = keys[alg]
    proof = check_proof(key.proof("POST", URL, iat=NOW), method="POST", url=URL, now=NOW)
    assert proof.jkt == key.jkt
    assert (proof.htm, proof.htu, proof.iat, proof.ath) == ("POST", URL, NOW, None)


def test_a_proof_made_by_joserfc_is_accepted() -> None:
    proof, jkt = joserfc_proof("GET", URL, iat=NOW)
    assert check_proof(proof, method="GET", url=URL, now=NOW).jkt == jkt


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "dpop"])
def test_typ_must_be_dpop_jwt(key: DPoPKey, typ: str | None) -> None:
    proof = key.proof("POST", URL, iat=NOW, header={"typ": typ})
    with pytest.raises(InvalidProof) as exc:
        check_proof(proof, method="POST", url=URL, now=NOW)
    assert reason(exc) == "wrong_typ"


def test_alg_none_and_symmetric_algorithms_are_refused(key: DPoPKey) -> None:
    claims = {"jti": "j", "htm": "POST", "htu": URL, "iat": int(NOW)}
    unsigned = jwt.encode(claims, None, algorithm="none",
                          headers={"typ": "dpop+jwt", "jwk": key.jwk})
    hmac_signed = jwt.encode(claims, "s" * 32, algorithm="HS256",
                             headers={"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "c2VjcmV0"}})
    for proof in (unsigned, hmac_signed):
        with pytest.raises(InvalidProof) as exc:
            check_proof(proof, method="POST", url=URL, now=NOW)
        assert reason(exc) == "bad_algorithm"


def test_alg_outside_the_servers_allowlist_is_refused(keys: dict[str, DPoPKey]) -> None:
    proof = keys["RS256"].proof("POST", URL, iat=NOW)
    with pytest.raises(InvalidProof) as exc:
        check_proof(proof, method="POST", url=URL, now=NOW, algorithms=("ES256", "EdDSA"))
    assert reason(exc) == "bad_algorithm"


def test_a_private_jwk_is_refused(key: DPoPKey) -> None:
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.private))
    proof = key.proof("POST", URL, iat=NOW, header={"jwk": private})
    with pytest.raises(InvalidProof) as exc:
        check_proof(proof, method="POST", url=URL, now=NOW)
    assert reason(exc) == "bad_key"


@pytest.mark.parametrize("jwk", [None, "key", {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
                                 {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}])
def test_a_missing_unfitting_or_broken_jwk_is_refused(key: DPoPKey, jwk: Any) -> None:
    proof = key.proof("POST", URL, iat=NOW, header={"jwk": jwk})
    with pytest.raises(InvalidProof) as exc:
        check_proof(proof, method="POST", url=URL, now=NOW)
    assert reason(exc) == "bad_key"


def test_a_proof_signed_by_another_key_than_its_jwk_is_refused(keys: dict[str, DPoPKey]
                                                               ) -> None:
    other = DPoPKey("ES256")
    proof = keys["ES256"].proof("POST", URL, iat=NOW, header={"jwk": other.jwk})
    with pytest.raises(InvalidProof) as exc:
        check_proof(proof, method="POST", url=URL, now=NOW)
    assert reason(exc) == "bad_signature"


def test_a_tampered_payload_is_refused(key: DPoPKey) -> None:
    header, _, signature = key.proof("POST", URL, iat=NOW).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(
        {"jti": "x", "htm": "GET", "htu": URL, "iat": int(NOW)}).encode()).rstrip(b"=")
    with pytest.raises(InvalidProof) as exc:
        check_proof(f"{header}.{forged.decode()}.{signature}", method="GET", url=URL, now=NOW)
    assert reason(exc) == "bad_signature"


@pytest.mark.parametrize("missing", ["jti", "htm", "htu", "iat"])
def test_every_required_claim_must_be_present(key: DPoPKey, missing: str) -> None:
    values: dict[str, Any] = {"iat": NOW, missing: DPoPKey.DROP}
    proof = key.proof("POST", URL, **values)
    with pytest.raises(InvalidProof) as exc:
        check_proof(proof, method="POST", url=URL, now=NOW)
    assert reason(exc) == "missing_claim"


def test_garbage_and_oversized_proofs_are_malformed(key: DPoPKey) -> None:
    for proof in ("", "a.b.c", "not a jwt", "x" * 9000):
        with pytest.raises(InvalidProof) as exc:
            check_proof(proof, method="POST", url=URL, now=NOW)
        assert reason(exc) == "malformed"


def test_wrong_method_is_refused(key: DPoPKey) -> None:
    with pytest.raises(InvalidProof) as exc:
        check_proof(key.proof("GET", URL, iat=NOW), method="POST", url=URL, now=NOW)
    assert reason(exc) == "wrong_method"


@pytest.mark.parametrize("htu", ["https://id.tessera.test/revoke",
                                 "https://evil.example/token",
                                 "http://id.tessera.test/token",
                                 "https://id.tessera.test:8443/token",
                                 "/token", "token"])
def test_wrong_url_is_refused(key: DPoPKey, htu: str) -> None:
    with pytest.raises(InvalidProof) as exc:
        check_proof(key.proof("POST", htu, iat=NOW), method="POST", url=URL, now=NOW)
    assert reason(exc) == "wrong_url"


@pytest.mark.parametrize("htu", ["https://id.tessera.test/token?x=1#frag",
                                 "HTTPS://ID.Tessera.TEST:443/token",
                                 "https://id.tessera.test/./a/../token",
                                 "https://id.tessera.test/%74oken"])
def test_url_comparison_ignores_query_and_normalises(key: DPoPKey, htu: str) -> None:
    check_proof(key.proof("POST", htu, iat=NOW), method="POST", url=URL + "?y=2", now=NOW)


def test_normalisation_rules() -> None:
    assert normalize_htu("HTTP://Example.COM:80") == "http://example.com/"
    assert normalize_htu("https://[::1]:8443/a/./b/../c/") == "https://[::1]:8443/a/c/"
    assert normalize_htu("https://h/a%2fb%7e") == "https://h/a%2Fb~"
    for bad in ("ftp://h/x", "https://user@h/x", "https://h:99999/x", "https:///x",
                "https://h/a b", "//h/x"):
        with pytest.raises(ValueError):
            normalize_htu(bad)


@pytest.mark.parametrize(("offset", "expected"), [(-61, "expired"), (61, "issued_in_future")])
def test_iat_outside_the_window_is_refused(key: DPoPKey, offset: int, expected: str) -> None:
    with pytest.raises(InvalidProof) as exc:
        check_proof(key.proof("POST", URL, iat=NOW + offset), method="POST", url=URL, now=NOW)
    assert reason(exc) == expected
    check_proof(key.proof("POST", URL, iat=NOW + offset), method="POST", url=URL, now=NOW,
                window=90)


def test_ath_is_required_and_checked_with_an_access_token(key: DPoPKey) -> None:
    token = "eyJ.access.token"
    good = key.proof("GET", URL, iat=NOW, access_token=token)
    assert check_proof(good, method="GET", url=URL, now=NOW, access_token=token).ath
    with pytest.raises(InvalidProof) as exc:
        check_proof(key.proof("GET", URL, iat=NOW), method="GET", url=URL, now=NOW,
                    access_token=token)
    assert reason(exc) == "missing_ath"
    with pytest.raises(InvalidProof) as exc:
        check_proof(good, method="GET", url=URL, now=NOW, access_token="another.token.x")
    assert reason(exc) == "wrong_ath"
    # found by tests/fuzz/fuzz_dpop_proof.py: a non-ASCII ath made compare_digest raise
    # TypeError (a 500 at resource servers) instead of a refusal
    with pytest.raises(InvalidProof) as exc:
        check_proof(key.proof("GET", URL, iat=NOW, ath="é" * 43), method="GET", url=URL,
                    now=NOW, access_token=token)
    assert reason(exc) == "wrong_ath"


# -- nonces (§8, §9) -------------------------------------------------------------------


def test_nonces_are_accepted_for_one_to_two_lifetimes() -> None:
    nonces = NonceIssuer(b"k" * 32, lifetime=300)
    nonce = nonces.issue(NOW)
    assert nonces.is_valid(nonce, NOW) and nonces.is_valid(nonce, NOW + 300)
    assert not nonces.is_valid(nonce, NOW + 600)
    assert not NonceIssuer(b"o" * 32, lifetime=300).is_valid(nonce, NOW)
    assert not nonces.is_valid(nonce[:-2] + "AA", NOW)
    assert not nonces.is_valid("!!", NOW)


# -- ProofChecker: nonce, replay, presentation ------------------------------------------


def checker(clock: FixedClock, **kw: Any) -> ProofChecker:
    return ProofChecker(MemoryReplayCache(), clock, **kw)


async def test_replayed_proof_is_refused(key: DPoPKey) -> None:
    dpop = checker(FixedClock(NOW))
    proof = key.proof("POST", URL, iat=NOW)
    await dpop.check([proof], method="POST", url=URL)
    with pytest.raises(ProofReplayed):
        await dpop.check([proof], method="POST", url=URL)


async def test_the_same_jti_from_another_key_is_not_a_replay(key: DPoPKey) -> None:
    dpop = checker(FixedClock(NOW))
    await dpop.check([key.proof("POST", URL, iat=NOW, jti="same")], method="POST", url=URL)
    other = DPoPKey("ES256")
    await dpop.check([other.proof("POST", URL, iat=NOW, jti="same")], method="POST", url=URL)


async def test_exactly_one_proof_is_required(key: DPoPKey) -> None:
    dpop = checker(FixedClock(NOW))
    for proofs in ([], [key.proof("POST", URL, iat=NOW), key.proof("POST", URL, iat=NOW)]):
        with pytest.raises(InvalidProof) as exc:
            await dpop.check(proofs, method="POST", url=URL)
        assert reason(exc) == "malformed"


async def test_a_required_nonce_is_demanded_then_accepted(key: DPoPKey) -> None:
    clock = FixedClock(NOW)
    dpop = checker(clock, nonces=NonceIssuer(b"n" * 32), require_nonce=True)
    with pytest.raises(UseNonce) as exc:
        await dpop.check([key.proof("POST", URL, iat=NOW)], method="POST", url=URL)
    nonce = exc.value.nonce
    proof = await dpop.check([key.proof("POST", URL, iat=NOW, nonce=nonce)],
                             method="POST", url=URL)
    assert proof.nonce == nonce
    clock.advance(900)
    with pytest.raises(UseNonce) as stale:
        await dpop.check([key.proof("POST", URL, iat=clock.now(), nonce=nonce)],
                         method="POST", url=URL)
    assert stale.value.nonce != nonce


async def test_a_wrong_nonce_is_refused_even_when_not_required(key: DPoPKey) -> None:
    dpop = checker(FixedClock(NOW), nonces=NonceIssuer(b"n" * 32))
    await dpop.check([key.proof("POST", URL, iat=NOW)], method="POST", url=URL)
    with pytest.raises(UseNonce):
        await dpop.check([key.proof("POST", URL, iat=NOW, nonce="made-up")],
                         method="POST", url=URL)


async def test_presentation_rules_of_a_resource_server(key: DPoPKey) -> None:
    dpop = checker(FixedClock(NOW))
    token = "eyJ.bound.token"

    def present(scheme: str, bound: str | None, proof: str) -> Any:
        return dpop.check_presentation(scheme=scheme, token=token, bound_jkt=bound,
                                       proofs=[proof], method="GET", url=URL)

    assert await present(BEARER, None, "ignored") is None
    with pytest.raises(BindingMismatch) as bearer:
        await present(BEARER, key.jkt, "")
    assert bearer.value.reason == "bound_token_as_bearer"
    with pytest.raises(BindingMismatch) as unbound:
        await present(DPOP, None, key.proof("GET", URL, iat=NOW, access_token=token))
    assert unbound.value.reason == "unbound_token_as_dpop"
    with pytest.raises(BindingMismatch) as wrong:
        await present(DPOP, DPoPKey("ES256").jkt,
                      key.proof("GET", URL, iat=NOW, access_token=token))
    assert wrong.value.reason == "wrong_key"
    with pytest.raises(InvalidProof) as no_ath:
        await present(DPOP, key.jkt, key.proof("GET", URL, iat=NOW))
    assert no_ath.value.reason == "missing_ath"
    proof = await present(DPOP, key.jkt, key.proof("GET", URL, iat=NOW, access_token=token))
    assert proof is not None and proof.jkt == key.jkt


async def test_memory_replay_cache_forgets_expired_entries_and_fails_closed_when_full(
) -> None:
    cache = MemoryReplayCache(max_entries=2)
    assert await cache.first_use("a", ttl=10, now=NOW)
    assert not await cache.first_use("a", ttl=10, now=NOW + 5)
    assert await cache.first_use("b", ttl=60, now=NOW)
    with pytest.raises(ReplayCacheUnavailable):
        await cache.first_use("c", ttl=10, now=NOW + 5)
    assert await cache.first_use("c", ttl=10, now=NOW + 11)  # "a" expired and was dropped
    assert len(cache) == 2
    with pytest.raises(ReplayCacheUnavailable):  # "b" and "c" live: nothing is forgotten
        await cache.first_use("d", ttl=10, now=NOW + 12)
    assert not await cache.first_use("b", ttl=10, now=NOW + 12)


def test_checker_refuses_unsafe_configuration() -> None:
    with pytest.raises(ValueError):
        checker(FixedClock(NOW), algorithms=("HS256",))
    with pytest.raises(ValueError):
        checker(FixedClock(NOW), require_nonce=True)
    with pytest.raises(ValueError):
        NonceIssuer(b"short")


def test_challenge_lists_the_algorithms_and_strips_quotes() -> None:
    assert challenge(("ES256", "EdDSA")) == 'DPoP algs="ES256 EdDSA"'
    assert challenge(("ES256",), "invalid_dpop_proof", 'bad "proof"') == \
        'DPoP error="invalid_dpop_proof", error_description="bad proof", algs="ES256"'
