"""Tessera Verifier SDK — verify RFC 9068 JWT access tokens locally and know revocations.

RFC 9068 (JWT Profile for OAuth 2.0 Access Tokens): https://www.rfc-editor.org/rfc/rfc9068

The core is pure and framework-free: ``verify_access_token(token, keys=..., policy=...,
revocation_state=..., now=...)`` returns a ``VerifiedToken`` or raises ``Denied`` with a
machine-readable ``Reason``. ``JwksCache`` and ``Verifier`` are the thin async drivers
(httpx, imported only when those names are used).

For services: ``VerifierService`` (built from ``VerifierSettings``) wires JWKS, revocation
following, the strict-route staleness rule, the decision log and Prometheus metrics;
``await service.check(token, scopes=..., strict=...)`` is the plain function API,
``VerifierMiddleware`` (+ ``RouteRule``) the ASGI middleware, ``require_token``,
``require_scopes``, ``require_acr``, ``require_strict``, ``require_tenant`` and
``require_owner`` the FastAPI
dependencies (FastAPI is the optional ``tessera[fastapi]`` extra), ``metrics_app`` serves
``/metrics``. ``Decision`` is the record ``VerifierService.record`` logs and counts, for
callers that decide in their own steps (the edge gateway).

DPoP (RFC 9449 §7): a token with ``cnf.jkt`` is accepted only as ``Authorization: DPoP``
with a ``DPoP`` proof of that key for the request's method and URL (``ath``, ``iat``
window, ``jti`` replay, optional nonce); the middleware and dependencies read both
headers, the plain API takes a ``Presentation``. ``DPoPBinding`` is that rule (the proof
checks are ``tessera.protocol.rfc9449``); ``RedisReplayCache`` shares replay detection
between replicas (``dpop_replay_cache="redis"``).

For async work: ``EnvelopeSigner`` signs an identity envelope (actor, tenant, session,
request id; never the bearer token) bound to one message body; ``EnvelopeVerifier``
checks it in the consumer, revocation included, under the consumer's
``RevocationPolicy`` (``reject_revoked``, or ``authorized_at_emission``, which needs a
``RevocationHistory``); ``verify_envelope`` is its pure core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tessera.verifier._cache import VerifiedTokenCache
from tessera.verifier._errors import (
    Denied,
    InvalidEvent,
    InvalidJwks,
    KeysUnavailable,
    Reason,
    StepUpRequired,
    VerifierError,
)
from tessera.verifier._keyset import ALLOWED_ALGS, KeySet, VerificationKey
from tessera.verifier._policy import MAX_LEEWAY, VerificationPolicy
from tessera.verifier._revocation import EventKind, RevocationState
from tessera.verifier._token import VerifiedToken
from tessera.verifier._verify import ACCEPTED_TYPS, MAX_TOKEN_LENGTH, verify_access_token

if TYPE_CHECKING:
    from tessera.verifier._asgi import RouteRule, VerifierMiddleware
    from tessera.verifier._decisions import Decision
    from tessera.verifier._dpop import DPoPBinding, NonceRequired, Presentation
    from tessera.verifier._envelope import (
        ENVELOPE_TYP,
        MAX_ENVELOPE_TTL,
        DecisionBasis,
        EnvelopeClaims,
        EnvelopeDenied,
        EnvelopePolicy,
        EnvelopeSigner,
        RevocationPolicy,
        VerifiedEnvelope,
    )
    from tessera.verifier._envelope_consumer import EnvelopeVerifier
    from tessera.verifier._envelope_seen_redis import RedisSeenEnvelopes
    from tessera.verifier._envelope_verify import PublisherKeys, verify_envelope
    from tessera.verifier._fastapi import (
        require_acr,
        require_owner,
        require_scopes,
        require_strict,
        require_tenant,
        require_token,
    )
    from tessera.verifier._follower import (
        EventSource,
        ResyncRequired,
        RevocationFollower,
        SourceUnavailable,
    )
    from tessera.verifier._jwks import JwksCache
    from tessera.verifier._metrics import metrics_app
    from tessera.verifier._replay import RedisReplayCache
    from tessera.verifier._revocation_history import RevocationHistory
    from tessera.verifier._service import VerifierService
    from tessera.verifier._settings import VerifierSettings
    from tessera.verifier._sources import BusSource, HttpFeedSource, RedisStreamSource
    from tessera.verifier._verifier import Verifier

__all__ = [
    "ACCEPTED_TYPS",
    "ALLOWED_ALGS",
    "ENVELOPE_TYP",
    "MAX_ENVELOPE_TTL",
    "MAX_LEEWAY",
    "MAX_TOKEN_LENGTH",
    "BusSource",
    "DPoPBinding",
    "Decision",
    "DecisionBasis",
    "Denied",
    "EnvelopeClaims",
    "EnvelopeDenied",
    "EnvelopePolicy",
    "EnvelopeSigner",
    "EnvelopeVerifier",
    "EventKind",
    "EventSource",
    "HttpFeedSource",
    "InvalidEvent",
    "InvalidJwks",
    "JwksCache",
    "KeySet",
    "KeysUnavailable",
    "NonceRequired",
    "Presentation",
    "PublisherKeys",
    "Reason",
    "RedisReplayCache",
    "RedisSeenEnvelopes",
    "RedisStreamSource",
    "ResyncRequired",
    "RevocationFollower",
    "RevocationHistory",
    "RevocationPolicy",
    "RevocationState",
    "RouteRule",
    "SourceUnavailable",
    "StepUpRequired",
    "VerificationKey",
    "VerificationPolicy",
    "VerifiedEnvelope",
    "VerifiedToken",
    "VerifiedTokenCache",
    "Verifier",
    "VerifierError",
    "VerifierMiddleware",
    "VerifierService",
    "VerifierSettings",
    "metrics_app",
    "require_acr",
    "require_owner",
    "require_scopes",
    "require_strict",
    "require_tenant",
    "require_token",
    "verify_access_token",
    "verify_envelope",
]

_LAZY = {
    "Decision": "tessera.verifier._decisions",
    "DPoPBinding": "tessera.verifier._dpop",
    "NonceRequired": "tessera.verifier._dpop",
    "Presentation": "tessera.verifier._dpop",
    "RedisReplayCache": "tessera.verifier._replay",
    "JwksCache": "tessera.verifier._jwks",
    "Verifier": "tessera.verifier._verifier",
    "EventSource": "tessera.verifier._follower",
    "ResyncRequired": "tessera.verifier._follower",
    "RevocationFollower": "tessera.verifier._follower",
    "SourceUnavailable": "tessera.verifier._follower",
    "BusSource": "tessera.verifier._sources",
    "HttpFeedSource": "tessera.verifier._sources",
    "RedisStreamSource": "tessera.verifier._sources",
    "VerifierService": "tessera.verifier._service",
    "VerifierSettings": "tessera.verifier._settings",
    "VerifierMiddleware": "tessera.verifier._asgi",
    "RouteRule": "tessera.verifier._asgi",
    "metrics_app": "tessera.verifier._metrics",
    "require_acr": "tessera.verifier._fastapi",
    "require_owner": "tessera.verifier._fastapi",
    "require_scopes": "tessera.verifier._fastapi",
    "require_strict": "tessera.verifier._fastapi",
    "require_tenant": "tessera.verifier._fastapi",
    "require_token": "tessera.verifier._fastapi",
    "ENVELOPE_TYP": "tessera.verifier._envelope",
    "MAX_ENVELOPE_TTL": "tessera.verifier._envelope",
    "DecisionBasis": "tessera.verifier._envelope",
    "EnvelopeClaims": "tessera.verifier._envelope",
    "EnvelopeDenied": "tessera.verifier._envelope",
    "EnvelopePolicy": "tessera.verifier._envelope",
    "EnvelopeSigner": "tessera.verifier._envelope",
    "RevocationPolicy": "tessera.verifier._envelope",
    "VerifiedEnvelope": "tessera.verifier._envelope",
    "EnvelopeVerifier": "tessera.verifier._envelope_consumer",
    "RedisSeenEnvelopes": "tessera.verifier._envelope_seen_redis",
    "PublisherKeys": "tessera.verifier._envelope_verify",
    "verify_envelope": "tessera.verifier._envelope_verify",
    "RevocationHistory": "tessera.verifier._revocation_history",
}


def __getattr__(name: str) -> Any:
    """Import the drivers on first use, so the pure core needs no httpx, Starlette,
    FastAPI or prometheus_client."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
