"""Settings of one verifying service: plain values, from code or ``TESSERA_VERIFIER_*``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tessera.verifier._policy import DEFAULT_ACR_LEVELS, MAX_LEEWAY

__all__ = ["VerifierSettings"]


class VerifierSettings(BaseSettings):
    """What ``VerifierService`` is built from. Keyword arguments win over the environment
    (``TESSERA_VERIFIER_ISSUER``, ``TESSERA_VERIFIER_CLIENT_SECRET``, ...)."""

    model_config = SettingsConfigDict(env_prefix="TESSERA_VERIFIER_", frozen=True,
                                      extra="forbid")

    issuer: str = Field(min_length=1)
    """The identity service's issuer URL, exactly as in the tokens' ``iss``. JWKS, the
    revocation feed and introspection are found under it (or under ``identity_url``)."""
    identity_url: str | None = None
    """Where this service reaches the identity service, when not at ``issuer`` (an
    internal address, a sidecar). ``iss`` is still compared with ``issuer``."""
    audience: str = Field(min_length=1)
    """This service's identifier: tokens must list it in ``aud``."""
    service_name: str | None = None
    """Name in decision events (``service``); defaults to ``audience``."""
    client_id: str | None = None
    """This service's client at the identity service: reads the revocation feed (needs the
    ``tessera:events`` scope) and calls introspection."""
    client_secret: SecretStr | None = None
    """Secret of ``client_id`` (sent with HTTP Basic, ``client_secret_basic``)."""
    source: Literal["http", "redis", "bus", "none"] = "http"
    """Where revocations come from: ``http`` (the identity service's SSE feed), ``redis``
    (the Redis stream; snapshot over HTTP), ``bus`` (an in-process bus passed to
    ``VerifierService(bus=...)``) or ``none`` (no follower: the state is fed by hand)."""
    redis_url: str | None = None
    """Redis URL when ``source`` is ``redis``."""
    redis_stream: str = "tessera:revocations"
    """Redis stream name when ``source`` is ``redis``."""
    max_staleness: float = Field(30.0, gt=0, le=3600)
    """Staleness bound of every route, in seconds (DESIGN §3): the revocation state must
    hold every event up to a watermark of the identity service at most this old, or the
    route refuses (503, ``stale_state``) or introspects (``strict_fallback``). Watermarks
    arrive every second while a relay runs; silence from the bus is not freshness."""
    strict_max_staleness: float = Field(10.0, gt=0, le=3600)
    """The tighter bound of strict routes (the lower of this and ``max_staleness``)."""
    strict_fallback: Literal["deny", "introspect"] = "deny"
    """A route past its bound, or a verifier that never loaded a snapshot: ``deny`` (503
    with ``Retry-After``) or ask the issuer (RFC 7662) per request."""
    strict_by_default: bool = False
    """Treat every route as strict (the tighter bound)."""
    leeway: float = Field(30.0, ge=0, le=MAX_LEEWAY)
    """Clock-skew leeway for ``exp``/``nbf``/``iat`` in seconds (≤ 60, DESIGN §9)."""
    acr_levels: tuple[str, ...] = DEFAULT_ACR_LEVELS
    """Authentication context classes, weakest first, for routes with a minimum ``acr``
    (``TESSERA_VERIFIER_ACR_LEVELS='["urn:tessera:acr:pwd", "urn:tessera:acr:mfa"]'``)."""
    reference_tokens: bool = False
    """Accept reference (opaque) access tokens: introspected at the issuer (RFC 7662,
    needs ``client_id``/``client_secret``), the answer cached for
    ``reference_cache_seconds`` and re-checked against the revocation state on every use."""
    reference_cache_seconds: float = Field(30.0, ge=0, le=300)
    """How long an introspection answer about a reference token is reused. Revocation
    events refuse a cached token at once; this bounds trust without the stream."""
    introspection_endpoint: str | None = None
    """Introspection URL; defaults to ``{identity_url or issuer}/introspect``."""
    introspection_timeout: float = Field(2.0, gt=0, le=30)
    """Upper bound in seconds on one introspection call."""
    jwks_uri: str | None = None
    """JWKS URL; defaults to ``{identity_url or issuer}/jwks``."""
    jwks_max_age: float = Field(300.0, gt=0)
    """Refetch the JWKS when older than this many seconds (unknown kids refetch sooner)."""
    jwks_min_refetch: float = Field(10.0, ge=0.1, le=3600)
    """An unknown ``kid`` refetches the JWKS at most this often (seconds)."""
    feed_heartbeat_timeout: float = Field(5.0, gt=0)
    """Reconnect the HTTP feed when nothing (not even a heartbeat) arrived for this long."""
    startup_wait: float = Field(5.0, ge=0)
    """At start, wait up to this many seconds for the first revocation snapshot. The
    service starts either way; every route refuses (or introspects) until it arrives."""
    report_applied: bool = True
    """Report the seq this verifier has applied to the identity service (``POST
    /revocations/acks``, needs the ``tessera:events`` client), so logout completion is
    measured (``tessera revoke --wait``). Sources ``http`` and ``redis`` only."""
    report_interval: float = Field(5.0, gt=0, le=60)
    """Report at least this often (a liveness beat)."""
    report_delay: float = Field(0.5, ge=0, le=5)
    """After applying events, report this much later (a burst costs one report; the
    report says how long ago it applied, so completion is still dated exactly)."""
    report_jitter: float = Field(1.0, ge=0, le=10)
    """Plus a random share of this many seconds, drawn per report: every verifier applies
    an event at the same moment, and N reports arriving together queue the identity
    service's next requests behind them (64 verifiers on one host: a revoke's p99 went
    from 90 ms to 400 ms, bench/propagation.py). Completion stays exact (``age``). At
    most a quarter of ``report_interval`` is used."""
    verifier_id: str | None = Field(None, min_length=1, max_length=200,
                                    pattern=r"^[\x21-\x7e]+$")
    """This instance's name in the identity service's registry; default
    ``<service_name>@<host>/<pid>``."""

    dpop_algorithms: tuple[str, ...] = ("ES256", "EdDSA", "RS256")
    """DPoP proof algorithms accepted (RFC 9449; asymmetric only), listed in ``algs`` of
    the ``WWW-Authenticate: DPoP`` challenge."""
    dpop_proof_window: float = Field(60.0, gt=0, le=300)
    """A proof's ``iat`` may lie this many seconds before or after now; its ``jti`` is
    remembered that long."""
    dpop_require_nonce: bool = False
    """Demand a nonce of this service in every proof (RFC 9449 §9): 401
    ``use_dpop_nonce`` with one in ``DPoP-Nonce`` otherwise."""
    dpop_nonce_secret: SecretStr | None = None
    """Key of this service's nonces (≥ 32 characters, the same on every replica so each
    accepts the others' nonces). Unset: a random key per process."""
    dpop_nonce_lifetime: float = Field(300.0, ge=30, le=3600)
    """Seconds a nonce stays current; it is accepted for up to twice that."""
    dpop_replay_cache: Literal["memory", "redis"] = "memory"
    """Where proofs' ``jti`` are remembered: this process (one replica, embedded) or
    Redis (``SET NX EX``, shared by every replica of this service)."""
    dpop_redis_url: str | None = None
    """Redis URL of the replay cache; defaults to ``redis_url``."""
    dpop_replay_cache_size: int = Field(100_000, ge=1000)
    """Proofs remembered in memory; full of live entries, new proofs are refused (503)."""
    dpop_public_url: str | None = None
    """``scheme://host[:port]`` (and any path prefix) clients use to reach this service,
    when a proxy in front changes scheme or host: ``htu`` is compared with it plus the
    request path. Unset: the URL the request arrived with."""

    @model_validator(mode="after")
    def _consistent(self) -> VerifierSettings:
        needs_client = (self.source in ("http", "redis") or self.strict_fallback == "introspect"
                        or self.reference_tokens)
        if needs_client and not (self.client_id and self.client_secret):
            raise ValueError("client_id and client_secret are required for the revocation "
                             "feed and for introspection")
        if self.source == "redis" and not self.redis_url:
            raise ValueError("redis_url is required when source is 'redis'")
        if self.dpop_replay_cache == "redis" and not (self.dpop_redis_url or self.redis_url):
            raise ValueError("dpop_redis_url (or redis_url) is required for the Redis "
                             "DPoP replay cache")
        if not self.dpop_algorithms or any(
                alg not in ("ES256", "EdDSA", "RS256") for alg in self.dpop_algorithms):
            raise ValueError("dpop_algorithms must be among ES256, EdDSA and RS256")
        secret = self.dpop_nonce_secret
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("dpop_nonce_secret must be at least 32 characters")
        return self

    @property
    def base_url(self) -> str:
        """The identity service's base URL (``identity_url`` or ``issuer``)."""
        return (self.identity_url or self.issuer).rstrip("/")
