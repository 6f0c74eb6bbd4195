"""Reference tokens vs JWTs at the verifier SDK: the cost of a cached decision.

    python bench/reference_tokens.py [--rounds N]

Both go through the same entry point a service uses (``Verifier.verify``) with the same
policy and a revocation state holding ``REVOKED`` entries: a JWT access token (EdDSA, the
verified-token cache warm, so signature work is skipped and claims, lifetime and
revocation are checked) and a reference token (the introspection answer cached, the same
claim and revocation checks on every use). The introspection client and JWKS endpoint are
in-process mocks: only the first call of each reaches them. Issue 13's target: a cached
reference decision within 2× a cached JWT decision. A table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from tessera.core.clock import FixedClock
from tessera.verifier import VerificationPolicy
from tessera.verifier._introspection import IntrospectionClient
from tessera.verifier._reference import ReferenceTokens
from tessera.verifier.driver import Verifier
from tessera.verifier.jwks import JwksCache
from tessera.verifier.revocation import RevocationState

ISSUER = "https://id.tessera.example"
AUDIENCE = "orders"
NOW = 1_800_000_000.0
REVOKED = 100_000
TARGET = 2.0


def claims() -> dict[str, Any]:
    return {"iss": ISSUER, "sub": "user-1", "aud": AUDIENCE, "exp": int(NOW) + 300,
            "iat": int(NOW), "nbf": int(NOW), "jti": secrets.token_urlsafe(16),
            "client_id": "web", "scope": "openid orders:read", "tid": "default",
            "sid": "sid-1", "sv": 1}


def build() -> tuple[Verifier, str, str, dict[str, int]]:
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key())) | {"kid": "k1", "alg": "EdDSA",
                                                               "use": "sig"}
    token = jwt.encode(claims(), key, algorithm="EdDSA",
                       headers={"kid": "k1", "typ": "at+jwt"})
    reference = secrets.token_urlsafe(32)
    answer = {"active": True, "token_type": "Bearer", **claims()}
    calls = {"jwks": 0, "introspect": 0}

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jwks"):
            calls["jwks"] += 1
            return httpx.Response(200, json={"keys": [jwk]})
        calls["introspect"] += 1
        return httpx.Response(200, json=answer)

    transport = httpx.MockTransport(serve)
    clock = FixedClock(NOW)
    state = RevocationState()
    for n in range(REVOKED):
        state.apply({"seq": n + 1, "kind": "token.revoked", "key": f"jti-{n}",
                     "at": NOW - 10, "expires_at": NOW + 600})
    state.confirm(NOW)
    references = ReferenceTokens(IntrospectionClient(
        f"{ISSUER}/introspect", client_id="orders", client_secret="s", transport=transport),
        ttl=60)
    verifier = Verifier(VerificationPolicy(ISSUER, AUDIENCE), clock=clock, state=state,
                        jwks=JwksCache(ISSUER, clock=clock, transport=transport,
                                       jwks_uri=f"{ISSUER}/jwks"),
                        references=references)
    return verifier, token, reference, calls


async def per_call_us(verifier: Verifier, token: str, rounds: int) -> float:
    """Median over 7 batches of ``rounds`` verifications, in µs per call."""
    await verifier.verify(token)  # warm: JWKS fetched, caches filled
    batches = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(rounds):
            await verifier.verify(token)
        batches.append((time.perf_counter() - started) / rounds * 1e6)
    return statistics.median(batches)


async def run(rounds: int) -> dict[str, Any]:
    verifier, token, reference, calls = build()
    try:
        jwt_us = await per_call_us(verifier, token, rounds)
        reference_us = await per_call_us(verifier, reference, rounds)
    finally:
        await verifier.aclose()
    ratio = reference_us / jwt_us
    return {"jwt_cached_us": round(jwt_us, 3), "reference_cached_us": round(reference_us, 3),
            "ratio": round(ratio, 3), "target_ratio": TARGET, "within_target": ratio <= TARGET,
            "introspections": calls["introspect"], "jwks_fetches": calls["jwks"],
            "revoked_entries": REVOKED, "rounds": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    result = asyncio.run(run(parser.parse_args().rounds))
    print(f"{'decision (cached)':<22} {'µs/call':>9}")
    print(f"{'JWT (EdDSA)':<22} {result['jwt_cached_us']:>9.2f}")
    print(f"{'reference token':<22} {result['reference_cached_us']:>9.2f}")
    print(f"ratio {result['ratio']:.2f} (target ≤ {TARGET:.0f}×: "
          f"{'met' if result['within_target'] else 'MISSED'}); introspection calls "
          f"{result['introspections']}, JWKS fetches {result['jwks_fetches']}, "
          f"{REVOKED:,} revoked jtis in the state")
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
