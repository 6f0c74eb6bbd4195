"""Configuration: environment (``TESSERA_*``, nested with ``__``) over ``tessera.toml``.

Every field is documented where it is declared; defaults are the secure ones.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tessera.observability.tracing_settings import TracingSettings

__all__ = ["AccountSettings", "BusSettings", "ClientExchangeSettings", "ConsoleSettings",
           "DPoPSettings", "ExchangeSettings", "ImpersonationSettings", "KeySettings",
           "MetricsSettings", "RiskPolicySettings", "SecuritySettings", "ServerSettings",
           "SettingError", "Settings", "SignalSettings",
           "TokenSettings", "TracingSettings", "VerifierRegistrySettings"]

_DATABASE_SCHEMES = ("sqlite", "sqlite+aiosqlite", "postgresql", "postgres",
                     "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2")


class SettingError(ValueError):
    """A setting is missing or cannot be used here. ``setting`` is the environment
    variable to set, ``fix`` what to do; ``str()`` is one line with both."""

    def __init__(self, setting: str, problem: str, fix: str) -> None:
        super().__init__(f"{setting}: {problem}; {fix}")
        self.setting = setting
        self.problem = problem
        self.fix = fix


class TokenSettings(BaseModel):
    access_token_ttl: int = Field(300, ge=30, le=3600)
    """Access token lifetime in seconds (DESIGN §2: 5 minutes)."""
    id_token_ttl: int = Field(300, ge=30, le=3600)
    """ID token lifetime in seconds."""
    refresh_token_ttl: int = Field(14 * 86400, ge=60)
    """Idle lifetime of one refresh token: unused this long, it expires."""
    refresh_family_ttl: int = Field(30 * 86400, ge=60)
    """Absolute lifetime of a refresh family (and so of a login's refreshability)."""
    refresh_grace_seconds: float = Field(5.0, ge=0, le=60)
    """A rotated refresh token presented again within this window (a concurrent retry of
    the same request) gets the same successor pair instead of revoking the family."""
    refresh_retry_seconds: float = Field(60.0, ge=0, le=600)
    """A retry after a lost response (the service crashed between commit and answer) may
    come later: for this long, and only while the successor has never been used, the
    same pair is issued again. Once the successor was used, presenting the old token is
    theft and revokes the family. 0: only ``refresh_grace_seconds`` applies."""
    introspection_max_lag: float = Field(2.0, ge=0, le=30)
    """Introspection of a JWT access token answers from the in-memory revocation state
    (the verifiers' one, fed by this process's outbox relay) while that state holds a
    relay watermark at most this many seconds old and every event this process committed;
    otherwise it reads the store. Keep it above ``bus.heartbeat``. 0: always the store."""
    authorization_code_ttl: int = Field(60, ge=10, le=600)
    """Authorization codes are single-use and short-lived (RFC 6749 §4.1.2)."""
    leeway: int = Field(30, ge=0, le=60)
    """Clock-skew leeway in seconds for exp/nbf/iat checks (≤ 60, DESIGN §9)."""


class KeySettings(BaseModel):
    algorithm: str = "ES256"
    """Signing algorithm of access tokens: ES256 (default), RS256 or EdDSA. ES256 signs in
    ~25 µs where RS256 takes ~250 µs, and verifies in ~65 µs (RS256: ~20 µs, Ed25519:
    ~100 µs): the cheapest sum for a token signed once and verified a handful of times
    (docs/performance.md). The ring holds an active key of this algorithm and one of
    ``id_token_algorithm``; JWKS publishes both."""
    id_token_algorithm: str = "RS256"
    """Signing algorithm of ID tokens (and of what relying parties verify with the OIDC
    defaults): RS256, which OIDC Core §15.1 requires every party to support."""
    encryption_key: str | None = None
    """Base64url 32-byte key-encryption key for private keys at rest. When unset with the
    embedded SQLite store, one is generated into ``<data_dir>/kek`` (mode 0600)."""
    reload_seconds: float = Field(5.0, gt=0)
    """How often each worker reloads the key ring from the store (rotation pickup)."""

    @field_validator("encryption_key")
    @classmethod
    def _kek_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValueError("must be 32 random bytes in base64url; generate one with "
                             "`tessera keys generate-kek`")
        return value

    @field_validator("algorithm", "id_token_algorithm")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ("RS256", "ES256", "EdDSA"):
            raise ValueError("algorithm must be RS256, ES256 or EdDSA")
        return value


class SecuritySettings(BaseModel):
    """Throttles count in a moving window of ``throttle_window`` seconds, shared by every
    worker (and, with ``bus.redis_url``, every instance): ``identity/throttles.py``."""

    login_attempts_per_minute: int = Field(10, ge=1, le=1000)
    """Password attempts allowed per account (tenant and username, whether the account
    exists or not) per window, from all addresses together; then 429 for that account
    until the window slides. Counted before the password is checked, so parallel guesses
    cannot overshoot; a correct password clears the count."""
    login_failures_per_address_per_minute: int = Field(30, ge=1, le=10_000)
    """Failed password attempts allowed per client address per window, across all
    accounts (password spraying); then 429 for that address. A correct password does not
    clear it. Behind a proxy, set ``server.forwarded_allow_ips`` so the address is the
    client's, not the proxy's."""
    totp_failures_per_minute: int = Field(5, ge=1, le=30)
    """TOTP code attempts allowed per user (from any address) per window; then 429 until
    the window slides. Counted before the code is checked (atomic); a right code clears
    the count. Per user, not per address: six digits fall to a distributed guesser
    otherwise."""
    client_auth_failures_per_minute: int = Field(30, ge=1)
    """Failed client authentications allowed per (client_id, client address) per window
    at the token, introspection and revocation endpoints; then 429 until the window
    slides."""
    throttle_window: int = Field(60, ge=1, le=3600)
    """Seconds of the moving window the four limits above count in."""
    throttle_key_prefix: str | None = Field(None, min_length=1, max_length=100)
    """Prefix of the throttles' keys in Redis, one namespace per deployment. Default:
    ``<bus.stream>:throttle`` (``tessera:revocations:throttle``), so deployments that
    share a Redis with their own stream names keep their counts apart."""
    max_body_bytes: int = Field(16 * 1024, ge=1024)
    """Largest request body the OAuth endpoints read."""
    cookie_secure: bool = False
    """Force ``Secure`` and the ``__Host-`` prefix on the browser cookies. Automatic with
    an ``https`` issuer; needed only where the issuer says ``http`` but browsers reach the
    service over HTTPS (which it should not: the issuer is the public URL)."""


class ServerSettings(BaseModel):
    """Bounds of the HTTP server in front of the app (``tessera.httpserver``), per worker
    process: ``TESSERA_SERVER__*`` for ``tessera serve`` (the console included),
    ``TESSERA_GATEWAY_SERVER__*`` for ``tessera gateway``."""

    max_header_bytes: int = Field(32 * 1024, ge=4096, le=1024 * 1024)
    """Largest request line plus headers a request may send; larger ones get ``431
    Request Header Fields Too Large`` and the connection is closed. uvicorn's httptools
    parser has no bound of its own (it buffers any size)."""
    header_timeout: float = Field(10.0, gt=0, le=300)
    """Seconds a client has, from connecting (or from the first byte of its next request),
    to send the complete request line and headers; then ``408 Request Timeout`` and the
    connection is closed. Holds off slow-header (slowloris) clients, which uvicorn alone
    would wait for forever. The body and long responses (the event feed) are not bound."""
    workers: int = Field(1, ge=1, le=256)
    """Worker processes ``tessera serve`` runs (its ``--workers`` sets it). Above one and
    without Redis, the throttles count in ``<data_dir>/throttles.db``, shared by the
    workers."""
    forwarded_allow_ips: list[str] = []
    """Addresses of the proxies (nginx, a load balancer) whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` are believed (uvicorn's ``forwarded_allow_ips``). Empty: the
    peer address is the client's; behind a proxy, every client would then share the
    proxy's address in the per-address throttles."""
    client_cert_proxies: list[str] = []
    """Addresses of TLS-terminating proxies whose client-certificate header
    (``client_cert_header``, nginx ``$ssl_client_escaped_cert``) is believed for mutual TLS
    (RFC 8705). The header is removed from every other request. Empty: only certificates
    of Tessera's own TLS listener (``tessera serve --tls-client-ca``) count."""
    client_cert_header: str = "x-ssl-client-cert"
    """The header such a proxy puts the URL-encoded PEM client certificate in."""
    max_connections: int = Field(1000, ge=1, le=100_000)
    """Open connections one worker process accepts; a connection beyond it gets ``503``
    with ``Retry-After: 1`` and is closed at once. Keep it below the process's open-file
    limit (``ulimit -n``) less the database and Redis connections; each follower of the
    revocation feed holds one connection."""


class BusSettings(BaseModel):
    redis_url: str | None = None
    """Redis URL for the revocation stream (production fan-out), and with it the shared
    hot state of every instance (throttles, DPoP replay cache). ``redis://``,
    ``rediss://user:password@host:6380/0`` (TLS, ACL), ``redis+sentinel://s1:26379,
    s2:26379/mymaster`` or ``redis+cluster://host:6379`` (``tessera.bus.redis_url``,
    docs/deploy.md). Unset: the in-process bus and the HTTP event feed
    (``/revocations/events``) carry events."""
    stream: str = "tessera:revocations"
    """Redis stream name."""
    stream_maxlen: int = Field(1_000_000, ge=1000)
    """Approximate number of events the stream keeps; older followers re-snapshot."""
    poll_interval: float = Field(0.1, gt=0, le=5)
    """How often the outbox relay looks for events committed by other processes while
    nothing wakes it for them (PostgreSQL without its LISTEN connection, SQLite while
    its change watch cannot read); while something does, it only wakes for
    ``heartbeat``."""
    heartbeat: float = Field(1.0, gt=0, le=30)
    """The outbox relay marks a watermark this often when idle (and at once after moving
    events); the event feed sends a heartbeat carrying it. Followers are fresh only while
    they hold a recent watermark, so this must be well below their staleness bounds."""


class VerifierRegistrySettings(BaseModel):
    """Verifiers report what they applied (``POST /revocations/acks``); logout completion
    is measured from those reports (``identity.completion``, docs/freshness.md)."""

    live_seconds: float = Field(15.0, ge=1, le=3600)
    """A verifier that has not reported for this long is no longer live: revocations stop
    waiting for it and it is named as not live. Verifiers report every 5 s by default
    (``TESSERA_VERIFIER_REPORT_INTERVAL``) and half a second after applying events."""
    forget_seconds: float = Field(86400.0, ge=60)
    """Verifiers silent for this long are dropped from the registry."""
    completion_history_seconds: float = Field(7 * 86400.0, ge=60)
    """Completion records are kept this long."""


class ClientExchangeSettings(BaseModel):
    audiences: dict[str, list[str]] | None = None
    """Audience → scopes the client may obtain there (``[]``: any the subject holds).
    Unset: the client's registered audiences."""
    max_lifetime: int | None = Field(None, ge=5)
    """Seconds an exchanged token may live (never beyond the subject's own expiry)."""
    max_act_depth: int = Field(4, ge=1, le=16)
    """How deep an ``act`` delegation chain may grow."""


class ExchangeSettings(BaseModel):
    clients: dict[str, ClientExchangeSettings] = {}
    """Per-client token-exchange policy (RFC 8693), keyed by client_id, e.g. in
    tessera.toml: ``[exchange.clients.c_abc] audiences = {"https://orders" = ["orders:read"]}``."""
    max_act_depth: int = Field(4, ge=1, le=16)
    """Chain depth for clients without a policy of their own."""


class ImpersonationSettings(BaseModel):
    """Audited admin impersonation: a token exchange (RFC 8693) whose ``subject_token`` is
    a user id (``subject_token_type=urn:tessera:params:oauth:token-type:user-id``) and whose
    ``actor_token`` is the administrator's access token. Each one opens a session of its
    own for the user (``amr`` ``imp``), listed and revocable like any other."""

    enabled: bool = True
    """Accept impersonation exchanges. Off: the user-id subject type is unsupported."""
    scope: str = "tessera:impersonate"
    """The scope the administrator's access token must carry. It is never granted to
    the impersonation token itself."""
    min_acr: str = "urn:tessera:acr:mfa"
    """The administrator's token must be authenticated at least this strongly, in the
    ordering of ``core.acr``; a value outside the ordering can never be met."""
    max_auth_age: int = Field(900, ge=30, le=86400)
    """Seconds since the administrator's ``auth_time`` after which impersonation is
    refused until they authenticate again."""
    max_lifetime: int = Field(600, ge=5, le=3600)
    """Seconds an impersonation token lives at most (never beyond the access-token
    lifetime, nor the exchanging client's policy). There is no refresh token."""


class ConsoleSettings(BaseModel):
    """The admin web console under ``/console`` (docs/console.md)."""

    enabled: bool = True
    """Mount the console. Off: ``/console`` does not exist (404)."""
    admin_tenant: str = "default"
    """The tenant the console login form signs administrators in to unless they name
    another. Who may enter is a role held on the server (``tessera users grant-role``:
    ``platform-admin``, ``tenant-admin``, ``support``), checked on every request."""
    required_acr: str = "urn:tessera:acr:mfa"
    """The session must be authenticated at least this strongly (step-up), in the
    ordering of ``core.acr``: ``urn:tessera:acr:pwd`` < ``urn:tessera:acr:mfa`` (password
    and TOTP). A weaker session is sent to the console login form; a value outside the
    ordering can never be met."""
    max_auth_age: int = Field(900, ge=30, le=86400)
    """Seconds since the session's ``auth_time`` after which the console asks for the
    credentials again, whatever the session's age."""
    page_size: int = Field(50, ge=5, le=500)
    """Rows per page in session and audit listings."""
    decision_logs: list[Path] = []
    """JSON-lines files of ``access.allowed``/``access.denied`` decisions shipped from
    verifiers and gateways (their ``tessera.audit`` log): the journey view merges the
    lines naming its needle with the audit table."""


class AccountSettings(BaseModel):
    """The signed-in user's own pages under ``/account`` (password, two-step verification)."""

    recent_auth_seconds: int = Field(300, ge=30, le=3600)
    """Enrolling a second factor needs a sign-in at most this many seconds old; an older
    session is asked for the password first."""
    recovery_codes: int = Field(10, ge=4, le=20)
    """One-time recovery codes handed out when two-step verification is turned on (or
    renewed); each one stands in for a code from the authenticator app once."""


class FederationSettings(BaseModel):
    """Upstream OpenID Connect providers (docs/federation.md; ``tessera idps``)."""

    enabled: bool = True
    """Mount the ``/federation/*`` routes and offer the tenant's providers on the login
    page. Off: no route, no button; providers stay registered."""
    timeout: float = Field(5.0, gt=0, le=60)
    """Seconds any one call to an upstream (discovery, JWKS, token, userinfo) may take;
    past it the user gets a clear page, ``tessera_federation_upstream_failures`` counts
    it and a ``federation.upstream_failed`` audit event records it."""
    login_seconds: int = Field(600, ge=60, le=3600)
    """How long a browser may stay at the upstream between leaving and coming back."""
    ssf_poll_seconds: float = Field(10.0, ge=0.1, le=3600)
    """How often providers registered with ``--ssf-poll-url`` are polled for security
    events (RFC 8936)."""


class SessionBoundSettings(BaseModel):
    """Global defaults for the bounds of the identity service's own login sessions
    (docs/sessions.md); a tenant overrides any of them with ``tessera tenants
    set-session-policy``. 0 means no bound."""

    idle_timeout: int = Field(0, ge=0, le=366 * 86400)
    """Seconds a session may go unused (no request with its cookie, no token refresh)
    before it ends. 0: no idle timeout."""
    absolute_timeout: int = Field(0, ge=0, le=366 * 86400)
    """Seconds after sign-in when a session ends however much it is used. 0: none."""
    max_sessions: int = Field(0, ge=0, le=10_000)
    """Concurrent active sessions per user. 0: no limit."""
    on_limit: Literal["refuse", "end_oldest"] = "refuse"
    """At the limit: ``refuse`` the new sign-in, or ``end_oldest`` (revoke the user's
    oldest session through the outbox, like any revocation)."""
    touch_interval: float = Field(60.0, ge=0, le=3600)
    """A session's ``last_seen_at`` is written at most this often (seconds): idle
    timeouts are exact to within it, and a busy browser costs no write per request."""


class DeviceSettings(BaseModel):
    """The device authorization grant, RFC 8628 (docs/sessions.md)."""

    enabled: bool = True
    """Serve ``/device_authorization`` and ``/device``, accept the device code grant and
    advertise ``device_authorization_endpoint``."""
    code_ttl: int = Field(600, ge=60, le=3600)
    """Seconds a device code and its user code stay usable (``expires_in``)."""
    interval: int = Field(5, ge=1, le=60)
    """Minimum seconds between polls of the token endpoint (``interval``); a faster poll
    gets ``slow_down`` and 5 more seconds (RFC 8628 §3.5)."""
    user_code_attempts_per_minute: int = Field(10, ge=1, le=1000)
    """User codes one address may submit at ``/device`` per ``security.throttle_window``
    (RFC 8628 §5.1: brute-forcing user codes)."""


class DPoPSettings(BaseModel):
    """DPoP, RFC 9449 (docs/dpop.md): sender-constrained tokens at the token endpoint."""

    enabled: bool = True
    """Accept DPoP proofs at the token and userinfo endpoints, bind tokens to their key
    and advertise ``dpop_signing_alg_values_supported``. Off: a ``DPoP`` header is
    ignored (tokens are Bearer) and bound refresh tokens can no longer be used."""
    algorithms: list[str] = ["ES256", "EdDSA", "RS256"]
    """Proof signature algorithms accepted (asymmetric only: never ``none`` or HS*)."""
    proof_window: int = Field(60, ge=5, le=300)
    """A proof's ``iat`` may lie this many seconds before or after now; its ``jti`` is
    remembered that long (replay detection)."""
    require_nonce: bool = False
    """Demand a server nonce in every proof (RFC 9449 §8): the first request of a client
    is answered ``use_dpop_nonce`` with one in ``DPoP-Nonce``. Nonces are always accepted
    and handed out; this makes them mandatory."""
    nonce_lifetime: int = Field(300, ge=30, le=3600)
    """Seconds a nonce stays current; it is accepted for up to twice that."""
    replay_cache_size: int = Field(100_000, ge=1000)
    """Proofs remembered per process when there is no Redis (``bus.redis_url``); with
    Redis the cache is shared by every worker. Full of live entries, new proofs are
    refused (503) rather than a remembered one forgotten."""

    @field_validator("algorithms")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        if not value or any(alg not in ("ES256", "EdDSA", "RS256") for alg in value):
            raise ValueError("DPoP algorithms must be among ES256, EdDSA and RS256")
        return value


class MetricsSettings(BaseModel):
    """Prometheus ``/metrics`` of ``tessera serve`` (docs/metrics.md). The metrics are not
    public by default: this is an internet-facing authorization server, and its counters
    (login failures, reuse detections, traffic) tell an attacker how an attack is going.
    Choose one: a scrape ``token``, a separate ``port`` on an internal interface, or
    ``public`` (today's behaviour before issue 10, for a private network only). Without
    any, ``/metrics`` answers 403 with a hint. With several workers the numbers are the
    service's totals either way (prometheus-client multiprocess mode)."""

    token: SecretStr | None = None
    """Bearer token Prometheus sends (``authorization: {credentials_file: ...}``), at
    least 32 characters; compared in constant time. Applies on whichever port serves
    ``/metrics``."""
    port: int | None = Field(None, ge=1, le=65535)
    """Serve ``/metrics`` on this port of ``host`` instead of the main port (which then
    has no ``/metrics``). Served by the ``tessera serve`` supervisor process."""
    host: str = "127.0.0.1"
    """Interface of the separate metrics port."""
    public: bool = False
    """Serve ``/metrics`` on the main port to anyone. Only behind a network that keeps
    the internet out; logged as a warning at startup."""

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("the metrics token must be at least 32 characters")
        return value



class RiskPolicySettings(BaseModel):
    """What a risk detection does in one tenant (docs/signals.md)."""

    action: Literal["notify", "step_up", "revoke"] = "notify"
    """``notify``: audit event, metric and SSF risk event only; ``step_up``: the family's
    next refresh is refused with ``invalid_grant`` so the user signs in again; ``revoke``:
    the refresh family ends (through the outbox, so logout signals follow)."""


class SignalSettings(BaseModel):
    """Outbound signals: OIDC Back-Channel Logout, the SSF transmitter and risk signals
    (docs/signals.md)."""

    enabled: bool = True
    """Fan out logout tokens and SETs. Off: no SSF routes, discovery flags false."""
    logout_token_ttl: int = Field(300, ge=30, le=3600)
    """Lifetime of a logout token; a delivery not made by then is dead-lettered (a
    retry always resends the same token, same ``jti``)."""
    set_ttl: int = Field(86400, ge=60)
    """How long an SSF event is kept for delivery before it is dead-lettered."""
    max_attempts: int = Field(8, ge=1, le=100)
    """Push attempts before a delivery goes to the dead-letter list."""
    backoff_base: float = Field(1.0, gt=0, le=300)
    """First retry delay (seconds); doubles per failed attempt."""
    backoff_cap: float = Field(300.0, gt=0)
    """Longest retry delay."""
    timeout: float = Field(5.0, gt=0, le=60)
    """Per-request timeout of a push to a receiver; a slow receiver is retried."""
    poll_interval: float = Field(0.5, gt=0, le=30)
    """How often the dispatcher looks for work committed by other processes."""
    concurrency: int = Field(8, ge=1, le=100)
    """Pushes in flight at once per process."""
    allowed_networks: list[str] = []
    """CIDRs of private receivers that may be contacted (SSRF guard: private,
    link-local and reserved addresses are refused otherwise)."""
    risk_ipv4_prefix: int = Field(24, ge=0, le=32)
    """Leading bits of a client IPv4 address kept for risk signals (0: none)."""
    risk_ipv6_prefix: int = Field(48, ge=0, le=128)
    """Leading bits of a client IPv6 address kept for risk signals (0: none)."""
    refresh_burst_count: int = Field(20, ge=2)
    """Refreshes of one family within ``refresh_burst_seconds`` that raise a signal."""
    refresh_burst_seconds: float = Field(5.0, gt=0)
    reuse_addresses: int = Field(3, ge=2)
    """Distinct addresses presenting rotated tokens of one family (within
    ``reuse_window_seconds``) that raise a signal."""
    reuse_window_seconds: float = Field(3600.0, gt=0)
    failed_login_accounts: int = Field(5, ge=2)
    """Distinct accounts failing to sign in from one address within
    ``failed_login_window_seconds`` that raise a signal."""
    failed_login_window_seconds: float = Field(300.0, gt=0)
    risk_policy: dict[str, RiskPolicySettings] = {}
    """Per-tenant policy (tenant id → action); tenants not named use ``default_risk``."""
    default_risk: RiskPolicySettings = RiskPolicySettings()
    retention_seconds: float = Field(7 * 86400.0, ge=60)
    """Settled deliveries and risk observations are kept this long."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TESSERA_", env_nested_delimiter="__", toml_file="tessera.toml",
        extra="ignore",
    )

    issuer: str = "http://127.0.0.1:8000"
    """The issuer identifier (RFC 8414 §2): https URL without query or fragment."""
    data_dir: Path = Path("data")
    """Where the embedded store and generated secrets live. Created ``0700``; the SQLite
    files in it ``0600`` (``prepare_data_dir``, ``store.sql.secure_sqlite_files``)."""
    database_url: str | None = None
    """SQLAlchemy URL. Default: SQLite file ``<data_dir>/tessera.db``. PostgreSQL:
    ``postgresql://user@host/db``."""
    tokens: TokenSettings = TokenSettings()
    keys: KeySettings = KeySettings()
    security: SecuritySettings = SecuritySettings()
    bus: BusSettings = BusSettings()
    verifiers: VerifierRegistrySettings = VerifierRegistrySettings()
    exchange: ExchangeSettings = ExchangeSettings()
    impersonation: ImpersonationSettings = ImpersonationSettings()
    console: ConsoleSettings = ConsoleSettings()
    dpop: DPoPSettings = DPoPSettings()
    account: AccountSettings = AccountSettings()
    federation: FederationSettings = FederationSettings()
    sessions: SessionBoundSettings = SessionBoundSettings()
    device: DeviceSettings = DeviceSettings()
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    metrics: MetricsSettings = MetricsSettings()
    server: ServerSettings = ServerSettings()
    signals: SignalSettings = SignalSettings()
    audit_log_json: bool = True
    """Also write every audit event as a JSON line to the ``tessera.audit`` logger."""

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        if "?" in value or "#" in value:
            raise ValueError("issuer must not contain a query or fragment")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str | None) -> str | None:
        if value is not None and value.partition(":")[0].lower() not in _DATABASE_SCHEMES:
            raise ValueError("must be a sqlite:///PATH or postgresql://USER@HOST/DB URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tessera.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def prepare_data_dir(self) -> Path:
        """The data directory, created ``0700`` if missing (its owner only: it holds the
        KEK and the database)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.data_dir

    def key_encryption_key(self) -> str:
        """The configured KEK, or for SQLite the one kept in ``<data_dir>/kek``."""
        if self.keys.encryption_key:
            return self.keys.encryption_key
        if not self.is_sqlite:
            raise SettingError("TESSERA_KEYS__ENCRYPTION_KEY", "required with PostgreSQL",
                               "generate one with `tessera keys generate-kek` and set it "
                               "(the same value on every instance)")
        path = self.data_dir / "kek"
        if not path.exists():
            from tessera.keys import Sealer

            self.prepare_data_dir()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(Sealer.new_kek_b64())
        return path.read_text().strip()
