"""Verifier SDK micro-benchmark: cost of one access-token verification.

    python bench/verify.py [--quick] [--cpu]

For EdDSA, ES256 and RS256, in one run: the SDK's cold verification (no verified-token
cache) next to the raw ``cryptography`` verification of the same token's signature over
its signing input, PyJWT's share of it, and a repeat presentation served by the
verified-token cache. Then DPoP (RFC 9449): a DPoP-bound RS256 token with a fresh proof
per request, for each proof algorithm, next to the same token presented as Bearer, and the
proof check alone next to the raw verification of the proof's signature. Then
the revocation-state lookup at 1k … 1M revoked jtis with the memory they take
(tracemalloc). The last line is one JSON object (RS256 is the default; ``dpop_us`` and
``bearer_us`` are RS256 tokens, the DPoP one with an ES256 proof).
"""

from __future__ import annotations

import gc
import json
import secrets
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.api_jws import PyJWS

from tessera.core.clock import FixedClock
from tessera.protocol.rfc9449 import (
    MemoryReplayCache,
    ProofChecker,
    access_token_hash,
    check_proof,
    jwk_thumbprint,
)
from tessera.protocol.rfc9449 import proof as proof_module
from tessera.verifier import (
    Denied,
    KeySet,
    VerificationPolicy,
    VerifiedToken,
    VerifiedTokenCache,
    verify_access_token,
)
from tessera.verifier.dpop import DPoPBinding, Presentation
from tessera.verifier.revocation import RevocationState

ISSUER = "https://id.tessera.example"
AUDIENCE = "orders"
NOW = 1_800_000_000.0
ALGS = ("EdDSA", "ES256", "RS256")
SIZES: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)
PROOFS = 1_500
"""Distinct proofs per algorithm, cycled (the replay cache is cleared at each wrap)."""
HTU = "https://orders.example/orders"


CLOCK: Callable[[], float] = time.perf_counter
"""``--cpu``: this process's CPU time instead (a shared, overloaded machine: time spent
waiting for a core is then not counted on either side of a ratio)."""


def bench(fn: Callable[[], object], *, target_s: float = 0.25, batches: int = 7) -> float:
    """Median µs/op over ``batches`` batches sized to take about ``target_s`` in total."""
    clock = CLOCK
    fn()
    start = clock()
    calls = 0
    while clock() - start < 0.02:
        fn()
        calls += 1
    per_call = max(clock() - start, 1e-6) / calls
    n = max(50, int(target_s / batches / per_call))
    results = []
    for _ in range(batches):
        t0 = clock()
        for _ in range(n):
            fn()
        results.append((clock() - t0) / n * 1e6)
    return statistics.median(results)


def make_key(alg: str) -> Any:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(key: Any, kid: str, alg: str) -> dict[str, Any]:
    if alg == "RS256":
        text = RSAAlgorithm.to_jwk(key.public_key())
    elif alg == "ES256":
        text = ECAlgorithm.to_jwk(key.public_key())
    else:
        text = OKPAlgorithm.to_jwk(key.public_key())
    jwk: dict[str, Any] = json.loads(text)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


def claims() -> dict[str, Any]:
    """A realistic Tessera access token payload."""
    return {
        "iss": ISSUER, "sub": "usr_" + secrets.token_urlsafe(12), "aud": [AUDIENCE, "billing"],
        "exp": int(NOW) + 300, "iat": int(NOW), "nbf": int(NOW),
        "jti": secrets.token_urlsafe(16), "client_id": "web-app",
        "scope": "openid orders:read orders:write", "sid": secrets.token_urlsafe(16), "sv": 3,
        "tid": "ten_" + secrets.token_urlsafe(8), "acr": "urn:tessera:acr:mfa",
        "amr": ["pwd", "otp"], "auth_time": int(NOW) - 600,
    }


def raw_verifier(alg: str, token: str, public_key: Any) -> Callable[[], None]:
    """The same check with cryptography alone: signature over the signing input."""
    signing_input, _, sig_b64 = token.rpartition(".")
    message = signing_input.encode()
    signature = jwt.utils.base64url_decode(sig_b64)
    if alg == "RS256":
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda: public_key.verify(signature, message, pkcs1, sha256)
    if alg == "ES256":
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
        ecdsa = ec.ECDSA(hashes.SHA256())
        return lambda: public_key.verify(der, message, ecdsa)
    return lambda: public_key.verify(signature, message)


def bench_algorithms(policy: VerificationPolicy) -> dict[str, dict[str, float]]:
    private = {f"{alg.lower()}-1": (alg, make_key(alg)) for alg in ALGS}
    jwks = {"keys": [public_jwk(k, kid, alg) for kid, (alg, k) in private.items()]}
    keys = KeySet.from_jwks(jwks)
    state = RevocationState()
    jws = PyJWS()
    out: dict[str, dict[str, float]] = {}
    for kid, (alg, key) in private.items():
        token = jwt.encode(claims(), key, algorithm=alg, headers={"kid": kid, "typ": "at+jwt"})
        vkey = keys.get(kid)
        assert vkey is not None
        raw = raw_verifier(alg, token, vkey.public_key)
        raw()  # raises if the raw check disagrees

        def cold(token: str = token) -> VerifiedToken:
            return verify_access_token(token, keys=keys, policy=policy, revocation_state=state,
                                       now=NOW)

        def pyjwt_only(token: str = token, k: Any = vkey.public_key, a: str = alg) -> Any:
            return jws.decode_complete(token, k, algorithms=[a])

        cache = VerifiedTokenCache()

        def cached(token: str = token, cache: VerifiedTokenCache = cache) -> VerifiedToken:
            return verify_access_token(token, keys=keys, policy=policy, revocation_state=state,
                                       now=NOW, cache=cache)

        cached()
        # interleave so drift (turbo, noisy neighbours) hits both sides alike
        sdk_runs, raw_runs = [], []
        for _ in range(3):
            raw_runs.append(bench(raw))
            sdk_runs.append(bench(cold))
        sdk_us, raw_us = statistics.median(sdk_runs), statistics.median(raw_runs)
        out[alg] = {
            "sdk_us": round(sdk_us, 2),
            "raw_us": round(raw_us, 2),
            "ratio": round(sdk_us / raw_us, 3),
            "pyjwt_us": round(bench(pyjwt_only), 2),
            "cached_us": round(bench(cached), 3),
            "token_bytes": len(token),
        }
    return out


def _run(coro: Any) -> Any:
    """Drive a coroutine that never suspends (the in-memory replay cache) to its result,
    without an event loop's overhead in the figure."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def bench_dpop(policy: VerificationPolicy) -> dict[str, dict[str, float]]:
    """RS256 access tokens: Bearer vs DPoP-bound with a fresh proof per request (the full
    SDK rule: verify the token, then the proof — typ, alg, jwk, signature, htm, htu, iat,
    ath —, jti replay in memory, jkt == cnf.jkt), per proof algorithm."""
    signer = make_key("RS256")
    keys = KeySet.from_jwks({"keys": [public_jwk(signer, "rs-1", "RS256")]})
    state = RevocationState()
    headers = {"kid": "rs-1", "typ": "at+jwt"}
    plain = jwt.encode(claims(), signer, algorithm="RS256", headers=headers)

    def bearer(token: str = plain) -> VerifiedToken:
        return verify_access_token(token, keys=keys, policy=policy, revocation_state=state,
                                   now=NOW)

    out: dict[str, dict[str, float]] = {}
    for alg in ALGS:
        proof_key = make_key(alg)
        jwk = {k: v for k, v in public_jwk(proof_key, "p", alg).items()
               if k not in ("kid", "alg", "use")}
        jkt = jwk_thumbprint(jwk)
        token = jwt.encode(claims() | {"cnf": {"jkt": jkt}}, signer, algorithm="RS256",
                           headers=headers)
        ath = access_token_hash(token)
        proofs = [jwt.encode({"jti": secrets.token_urlsafe(16), "htm": "GET", "htu": HTU,
                              "iat": int(NOW), "ath": ath}, proof_key, algorithm=alg,
                             headers={"typ": "dpop+jwt", "jwk": jwk})
                  for _ in range(PROOFS)]
        cache = MemoryReplayCache(PROOFS + 10)
        binding = DPoPBinding(ProofChecker(cache, FixedClock(NOW)))
        def next_proof(proofs: list[str] = proofs, cache: MemoryReplayCache = cache,
                       index: list[int] = [0]) -> str:  # noqa: B006 (the cursor)
            i = index[0] = (index[0] + 1) % len(proofs)
            if i == 0:
                cache.clear()
            return proofs[i]

        def dpop(token: str = token, binding: DPoPBinding = binding) -> None:
            verified = verify_access_token(token, keys=keys, policy=policy,
                                           revocation_state=state, now=NOW)
            _run(binding.check(verified, token,
                               Presentation("dpop", (next_proof(),), "GET", HTU)))

        def proof_only(token: str = token, proof: str = proofs[0]) -> None:
            check_proof(proof, method="GET", url=HTU, now=NOW, access_token=token)

        raw_proof = raw_verifier(alg, proofs[0], proof_key.public_key())
        raw_proof()  # raises if the raw check disagrees

        def cold_key(token: str = token, proof: str = proofs[0]) -> None:
            proof_module._keys.clear()  # the first proof of a client key: import + jkt
            check_proof(proof, method="GET", url=HTU, now=NOW, access_token=token)

        dpop_runs, bearer_runs = [], []
        for _ in range(3):
            bearer_runs.append(bench(bearer))
            dpop_runs.append(bench(dpop))
        dpop_us, bearer_us = statistics.median(dpop_runs), statistics.median(bearer_runs)
        proof_runs, raw_runs = [], []
        for _ in range(3):
            raw_runs.append(bench(raw_proof))
            proof_runs.append(bench(proof_only))
        proof_us, raw_us = statistics.median(proof_runs), statistics.median(raw_runs)
        out[alg] = {
            "bearer_us": round(bearer_us, 2),
            "dpop_us": round(dpop_us, 2),
            "overhead_us": round(dpop_us - bearer_us, 2),
            "proof_us": round(proof_us, 2),
            "proof_raw_us": round(raw_us, 2),
            "proof_ratio": round(proof_us / raw_us, 3),
            "cold_key_us": round(bench(cold_key), 2),
            "proof_bytes": len(proofs[0]),
        }
    return out


def bench_lookups(token: VerifiedToken) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for size in SIZES:
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        state = RevocationState()
        revoked = ""
        for seq in range(1, size + 1):
            revoked = secrets.token_urlsafe(16)
            state.apply({"seq": seq, "kind": "token.revoked", "key": revoked, "at": NOW,
                         "expires_at": NOW + 300 + seq % 600})
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        assert len(state) == size

        def lookup(state: RevocationState = state) -> None:
            state.check(token)

        hit = _replace_jti(token, revoked)

        def lookup_revoked(state: RevocationState = state, hit: VerifiedToken = hit) -> None:
            try:
                state.check(hit)
            except Denied:
                return
            raise AssertionError("revoked jti not found")

        out[size] = {
            "lookup_us": round(bench(lookup), 3),
            "revoked_hit_us": round(bench(lookup_revoked), 3),
            "bytes_per_entry": round(used / size, 1),
            "mem_mb": round(used / 2**20, 1),
        }
        del state
    return out


def _replace_jti(token: VerifiedToken, jti: str) -> VerifiedToken:
    return token._replace(jti=jti)


def main() -> None:
    global SIZES, PROOFS, CLOCK
    if "--quick" in sys.argv[1:]:  # development: smaller state, fewer proofs
        SIZES, PROOFS = (1_000, 10_000), 300
    if "--cpu" in sys.argv[1:]:
        CLOCK = time.process_time
    started = time.perf_counter()
    policy = VerificationPolicy(issuer=ISSUER, audience=AUDIENCE,
                                required_scopes=frozenset({"orders:read"}))
    per_alg = bench_algorithms(policy)
    per_proof_alg = bench_dpop(policy)
    key = make_key("EdDSA")
    keys = KeySet.from_jwks({"keys": [public_jwk(key, "k", "EdDSA")]})
    sample = verify_access_token(
        jwt.encode(claims(), key, algorithm="EdDSA", headers={"kid": "k", "typ": "at+jwt"}),
        keys=keys, policy=policy, revocation_state=RevocationState(), now=NOW,
    )
    lookups = bench_lookups(sample)

    print(f"python {sys.version.split()[0]}, PyJWT {jwt.__version__}, "
          f"clock {'process CPU time' if CLOCK is time.process_time else 'wall'}")
    print(f"{'alg':<6} {'sdk µs':>9} {'raw µs':>9} {'ratio':>7} {'pyjwt µs':>9} "
          f"{'cached µs':>10} {'bytes':>6}")
    for alg, r in per_alg.items():
        print(f"{alg:<6} {r['sdk_us']:>9.2f} {r['raw_us']:>9.2f} {r['ratio']:>7.2f} "
              f"{r['pyjwt_us']:>9.2f} {r['cached_us']:>10.3f} {r['token_bytes']:>6.0f}")
    print("  sdk = verify_access_token without cache; raw = cryptography verify of the")
    print("  signing input; pyjwt = PyJWS.decode_complete alone (inside sdk)")
    print(f"\n{'proof':<6} {'bearer µs':>10} {'dpop µs':>9} {'+µs':>8} {'proof µs':>9} "
          f"{'raw µs':>8} {'ratio':>6} {'cold key µs':>12} {'bytes':>6}")
    for alg, r in per_proof_alg.items():
        print(f"{alg:<6} {r['bearer_us']:>10.2f} {r['dpop_us']:>9.2f} "
              f"{r['overhead_us']:>8.2f} {r['proof_us']:>9.2f} {r['proof_raw_us']:>8.2f} "
              f"{r['proof_ratio']:>6.2f} {r['cold_key_us']:>12.2f} {r['proof_bytes']:>6.0f}")
    print("  RS256 access token; bearer = verify_access_token; dpop = that + the SDK's DPoP")
    print("  rule with a fresh proof (replay cache in memory); proof = check_proof alone;")
    print("  raw = cryptography verify of the proof's signature (ratio = proof / raw)")
    print("  cold key = a client key's first proof (jwk import + RFC 7638 thumbprint)")
    print(f"\n{'revoked':>9} {'lookup µs':>10} {'hit µs':>8} {'B/entry':>8} {'MB':>7}")
    for size, r in lookups.items():
        print(f"{size:>9,} {r['lookup_us']:>10.3f} {r['revoked_hit_us']:>8.3f} "
              f"{r['bytes_per_entry']:>8.1f} {r['mem_mb']:>7.1f}")
    print("  lookup = RevocationState.check of a live token (all grains);"
          " hit = a revoked jti (raises)")
    print(f"\ntotal {time.perf_counter() - started:.1f}s")
    default = per_alg["RS256"]
    summary = {
        "sdk_us": default["sdk_us"],
        "raw_us": default["raw_us"],
        "ratio": default["ratio"],
        "cached_us": default["cached_us"],
        "lookup_us_1m": lookups[max(SIZES)]["lookup_us"],
        "lookup_us": {str(k): v["lookup_us"] for k, v in lookups.items()},
        "mem_mb": {str(k): v["mem_mb"] for k, v in lookups.items()},
        "per_alg": per_alg,
        "dpop_us": per_proof_alg["ES256"]["dpop_us"],
        "bearer_us": per_proof_alg["ES256"]["bearer_us"],
        "dpop_per_proof_alg": per_proof_alg,
        "ratio_per_alg": {alg: r["ratio"] for alg, r in per_alg.items()},
        "cached_us_per_alg": {alg: r["cached_us"] for alg, r in per_alg.items()},
        "dpop_proof_ratio": {alg: r["proof_ratio"] for alg, r in per_proof_alg.items()},
        "clock": "cpu" if CLOCK is time.process_time else "wall",
    }
    print(json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    main()
