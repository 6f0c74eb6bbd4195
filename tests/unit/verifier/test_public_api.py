"""The verifier SDK's public API, pinned as a literal list: a name added, removed or moved
is a decision made here, on purpose (issue 14: the SDK laid out as what it is).

Public modules are the ones without a leading underscore; each lists its API in ``__all__``
and exports nothing else. The pure core (``tessera.verifier``) loads no HTTP client, web
framework or storage.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import tessera.verifier

PUBLIC_API: dict[str, list[str]] = {
    "tessera.verifier": [
        "ACCEPTED_TYPS", "ALLOWED_ALGS", "Denied", "InvalidEvent", "InvalidJwks", "KeySet",
        "KeysUnavailable", "MAX_LEEWAY", "MAX_TOKEN_LENGTH", "Reason", "StepUpRequired",
        "VerificationKey", "VerificationPolicy", "VerifiedToken", "VerifiedTokenCache",
        "VerifierError", "verify_access_token",
    ],
    "tessera.verifier.errors": [
        "Denied", "Forbidden", "INTROSPECTION_UNAVAILABLE", "InvalidEvent", "InvalidJwks",
        "KEYS_UNAVAILABLE", "KeysUnavailable", "MissingToken", "NOT_OWNER", "Reason",
        "StepUpRequired", "Unavailable", "VerifierError", "WRONG_TENANT", "label_of",
    ],
    "tessera.verifier.service": ["Attempt", "VerifierService"],
    "tessera.verifier.settings": ["VerifierSettings"],
    "tessera.verifier.asgi": [
        "ALLOWED_KEY", "RouteRule", "SERVICE_KEY", "TOKEN_KEY", "VerifierMiddleware",
    ],
    "tessera.verifier.fastapi": [
        "BearerChallenge", "challenge_handler", "install", "require_acr", "require_owner",
        "require_scopes", "require_strict", "require_tenant", "require_token", "service_of",
    ],
    "tessera.verifier.dpop": [
        "BEARER", "BEARER_PRESENTATION", "DPOP", "DPOP_CHECKED_KEY", "DPOP_REASONS", "DPoPBinding",
        "NonceRequired", "Presentation", "REPLAY_UNAVAILABLE", "credentials", "mark_checked",
        "presentation_from_scope", "request_url",
    ],
    "tessera.verifier.replay": ["DEFAULT_PREFIX", "RedisReplayCache"],
    "tessera.verifier.jwks": ["JwksCache"],
    "tessera.verifier.driver": ["Verifier"],
    "tessera.verifier.metrics": ["VerifierMetrics", "metrics_app"],
    "tessera.verifier.decisions": [
        "ALLOWED_INTROSPECTED", "ALLOWED_STALE", "ALLOWED_VALID", "Decision", "DecisionLog",
        "correlation_id_from", "hash_token",
    ],
    "tessera.verifier.revocation": [
        "EventKind", "EventSource", "ResyncRequired", "RevocationFollower", "RevocationHistory",
        "RevocationState", "SourceUnavailable",
    ],
    "tessera.verifier.revocation.state": ["EventKind", "RevocationState"],
    "tessera.verifier.revocation.history": ["RevocationHistory"],
    "tessera.verifier.revocation.follower": [
        "EventSource", "FeedBatch", "Phase", "ResyncRequired", "RevocationFollower",
        "SourceUnavailable",
    ],
    "tessera.verifier.revocation.sources": ["BusSource", "HttpFeedSource", "RedisStreamSource"],
    "tessera.verifier.revocation.acks": ["AckReporter", "default_verifier_id"],
    "tessera.verifier.envelope": [
        "DecisionBasis", "ENVELOPE_TYP", "EnvelopeClaims", "EnvelopeDenied", "EnvelopePolicy",
        "EnvelopeSigner", "EnvelopeVerifier", "MAX_ENVELOPE_TTL", "PublisherKeys",
        "RedisSeenEnvelopes", "RevocationPolicy", "VerifiedEnvelope", "verify_envelope",
    ],
    "tessera.verifier.envelope.claims": [
        "BODY_MISMATCH", "DEFAULT_ENVELOPE_TTL", "DecisionBasis", "ENVELOPE_ALGS", "ENVELOPE_TYP",
        "EnvelopeClaims", "EnvelopeDenied", "EnvelopePolicy", "EnvelopeSigner", "MAX_ENVELOPE_TTL",
        "REPLAYED", "REVOCATION_UNKNOWN", "RevocationPolicy", "VerifiedEnvelope", "body_hash",
        "parse_envelope",
    ],
    "tessera.verifier.envelope.verify": [
        "PublisherKeys", "check_body", "check_envelope_audience", "check_envelope_freshness",
        "check_envelope_lifetime", "check_publisher", "judge_revocation", "verify_envelope",
    ],
    "tessera.verifier.envelope.consumer": ["EnvelopeVerifier", "SeenEnvelopes"],
    "tessera.verifier.envelope.seen_redis": ["DEFAULT_PREFIX", "RedisSeenEnvelopes"],
}

def _public_modules() -> set[str]:
    found = {"tessera.verifier"}
    for info in pkgutil.walk_packages(tessera.verifier.__path__, "tessera.verifier."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.add(info.name)
    return found


def test_the_public_modules_are_exactly_the_pinned_ones() -> None:
    assert _public_modules() == set(PUBLIC_API)


@pytest.mark.parametrize("module_name", sorted(PUBLIC_API))
def test_each_public_module_exports_exactly_its_pinned_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == PUBLIC_API[module_name]
    for name in module.__all__:
        assert getattr(module, name) is not None
    defined_here = {name for name, value in vars(module).items()
                    if not name.startswith("_")
                    and getattr(value, "__module__", None) == module_name}
    assert defined_here <= set(module.__all__), "public but not in __all__"


def test_the_pure_core_loads_no_http_client_framework_or_store() -> None:
    code = (
        "import sys, tessera.verifier as v; v.verify_access_token; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'httpx', 'sqlalchemy', 'starlette', 'fastapi', 'redis', 'prometheus_client'}"
        " or m.startswith(('tessera.store', 'tessera.identity'))]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

