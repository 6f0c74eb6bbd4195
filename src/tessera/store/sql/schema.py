"""Tables (SQLAlchemy Core). Times are seconds since the epoch (double precision).

Alembic migrations in ``tessera/store/migrations`` are the source of truth for the live
schema; this metadata mirrors them and is what queries are written against.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["metadata"]

metadata = MetaData()

tenants = Table(
    "tenants", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
    Column("suspended_at", Double),
)

clients = Table(
    "clients", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("public", Boolean, nullable=False),
    Column("secret_hash", String(64)),
    Column("grant_types", JSON, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("audiences", JSON, nullable=False),
    Column("redirect_uris", JSON, nullable=False),
    Column("post_logout_redirect_uris", JSON, nullable=False),
    Column("tenant_id", String(64)),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Double, nullable=False),
    Column("third_party", Boolean, nullable=False, default=False),
    Column("subject_audiences", JSON, nullable=False),
    Column("auth_method", String(40)),
    Column("access_token_format", String(16)),
    Column("auth_config", JSON),
)

users = Table(
    "users", metadata,
    Column("user_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("username", String(200), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Double, nullable=False),
    Column("deleted_at", Double),
    UniqueConstraint("tenant_id", "username", name="uq_users_tenant_username"),
)

sessions = Table(
    "sessions", metadata,
    Column("sid", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.user_id"), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("sv", Integer, nullable=False),
    Column("acr", String(100), nullable=False),
    Column("amr", JSON, nullable=False),
    Column("auth_time", Double, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("last_seen_at", Double, nullable=False),
    Column("revoked_at", Double),
    Column("revoke_reason", String(100)),
    Column("user_agent", String(300)),
    Column("browser_handle_hash", String(64), unique=True),
    Column("actor_sid", String(64)),
    Column("actor_jti", String(64)),
    Column("client_address", String(64)),
    Column("device_client_id", String(64)),
    Index("ix_sessions_user_id", "user_id"),
    Index("ix_sessions_actor_sid", "actor_sid"),
    Index("ix_sessions_actor_jti", "actor_jti"),
)

user_roles = Table(
    "user_roles", metadata,
    Column("user_id", String(64), ForeignKey("users.user_id"), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("granted_at", Double, nullable=False),
    Column("granted_by", String(200), nullable=False),
)

consents = Table(
    "consents", metadata,
    Column("user_id", String(64), ForeignKey("users.user_id"), primary_key=True),
    Column("client_id", String(64), primary_key=True),
    Column("scope", JSON, nullable=False),
    Column("granted_at", Double, nullable=False),
)

recovery_codes = Table(
    "recovery_codes", metadata,
    Column("user_id", String(64), ForeignKey("users.user_id"), primary_key=True),
    Column("code_hash", String(64), primary_key=True),
    Column("created_at", Double, nullable=False),
    Column("used_at", Double),
)

user_factors = Table(
    "user_factors", metadata,
    Column("user_id", String(64), ForeignKey("users.user_id"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("sealed_secret", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("confirmed_at", Double),
    Column("last_step", BigInteger),
)

auth_codes = Table(
    "auth_codes", metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("sid", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", JSON, nullable=False),
    Column("code_challenge", String(128)),
    Column("nonce", String(300)),
    Column("expires_at", Double, nullable=False),
    Column("consumed_at", Double),
    Column("family_id", String(64)),
)

refresh_families = Table(
    "refresh_families", metadata,
    Column("family_id", String(64), primary_key=True),
    Column("sid", String(64), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("scope", JSON, nullable=False),
    Column("audience", JSON, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("revoked_at", Double),
    Column("revoke_reason", String(100)),
    Column("jkt", String(64)),
    Index("ix_refresh_families_sid", "sid"),
)

refresh_tokens = Table(
    "refresh_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(64), ForeignKey("refresh_families.family_id"), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("issued_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("access_jti", String(64), nullable=False),
    Column("rotated_at", Double),
    Column("successor_hash", String(64)),
    Index("ix_refresh_tokens_family_id", "family_id"),
)

revocation_events = Table(
    "revocation_events", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("key", String(200), nullable=False),
    Column("at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_revocation_events_kind_key", "kind", "key"),
)

audit_events = Table(
    "audit_events", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("event", String(60), nullable=False),
    Column("at", Double, nullable=False),
    Column("fields", JSON, nullable=False),
    Column("chain_hash", String(64)),
    Index("ix_audit_events_event", "event"),
)

signing_keys = Table(
    "signing_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("sealed_private", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("changed_at", Double, nullable=False),
)

verifier_reports = Table(
    "verifier_reports", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("verifier_id", String(200), primary_key=True),
    Column("service", String(200), nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("first_seen", Double, nullable=False),
    Column("reported_at", Double, nullable=False),
    Column("lag", Double),
)

revocation_completions = Table(
    "revocation_completions", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("at", Double, nullable=False),
    Column("completed_at", Double, nullable=False),
    Column("verifiers", Integer, nullable=False),
)

identity_providers = Table(
    "identity_providers", metadata,
    Column("idp_id", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("issuer", Text, nullable=False),
    Column("client_id", String(255), nullable=False),
    Column("sealed_secret", Text, nullable=False),
    Column("scope", String(500), nullable=False),
    Column("mapping", JSON, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", Double, nullable=False),
    Column("ssf_poll_url", Text),
    UniqueConstraint("tenant_id", "name", name="uq_identity_providers_tenant_name"),
)

external_identities = Table(
    "external_identities", metadata,
    Column("idp_id", String(64), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.user_id"), nullable=False),
    Column("profile", JSON, nullable=False),
    Column("profile_hash", String(64), nullable=False),
    Column("linked_by", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_external_identities_user_id", "user_id"),
)

upstream_sessions = Table(
    "upstream_sessions", metadata,
    Column("sid", String(64), primary_key=True),
    Column("idp_id", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("upstream_sid", String(255)),
    Index("ix_upstream_sessions_idp_subject", "idp_id", "subject"),
    Index("ix_upstream_sessions_idp_sid", "idp_id", "upstream_sid"),
)

inbound_jtis = Table(
    "inbound_jtis", metadata,
    Column("idp_id", String(64), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", Double, nullable=False),
)

session_policies = Table(
    "session_policies", metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("idle_timeout", Double),
    Column("absolute_timeout", Double),
    Column("max_sessions", Integer),
    Column("on_limit", String(16)),
    Column("updated_at", Double, nullable=False),
)

device_codes = Table(
    "device_codes", metadata,
    Column("device_code_hash", String(64), primary_key=True),
    Column("user_code_hash", String(64), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("scope", JSON, nullable=False),
    Column("audience", JSON, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("interval", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("last_polled_at", Double),
    Column("user_id", String(64)),
    Column("sid", String(64)),
    Column("decided_at", Double),
    Column("client_address", String(64)),
    Index("ix_device_codes_user_code_hash", "user_code_hash", unique=True),
)

reference_tokens = Table(
    "reference_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("jti", String(64), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("tenant_id", String(64)),
    Column("sid", String(64)),
    Column("claims", JSON, nullable=False),
    Column("expires_at", Double, nullable=False),
    Index("ix_reference_tokens_expires_at", "expires_at"),
)

client_assertion_jtis = Table(
    "client_assertion_jtis", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti", String(200), primary_key=True),
    Column("expires_at", Double, nullable=False),
    Index("ix_client_assertion_jtis_expires_at", "expires_at"),
)

# -- outbound signals (issue 12, migration 0011) ------------------------------------------
_SIGNAL_ID = BigInteger().with_variant(Integer, "sqlite")

client_logout = Table(
    "client_logout", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("uri", String(2000), nullable=False),
    Column("session_required", Boolean, nullable=False),
)

ssf_streams = Table(
    "ssf_streams", metadata,
    Column("stream_id", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("tenant_id", String(64)),
    Column("aud", String(2000), nullable=False),
    Column("method", String(64), nullable=False),
    Column("endpoint_url", String(2000)),
    Column("events_requested", JSON, nullable=False),
    Column("description", String(500)),
    Column("status", String(16), nullable=False),
    Column("status_reason", String(500)),
    Column("default_subjects", String(8), nullable=False),
    Column("sealed_authorization", Text),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ix_ssf_streams_client_id", "client_id"),
)

ssf_subjects = Table(
    "ssf_subjects", metadata,
    Column("stream_id", String(64), primary_key=True),
    Column("subject_key", String(600), primary_key=True),
    Column("subject", JSON, nullable=False),
)

signal_events = Table(
    "signal_events", metadata,
    Column("id", _SIGNAL_ID, primary_key=True, autoincrement=True),
    Column("kind", String(200), nullable=False),
    Column("tenant_id", String(64)),
    Column("user_id", String(64), nullable=False),
    Column("at", Double, nullable=False),
    Column("data", JSON, nullable=False),
)

signal_cursors = Table(
    "signal_cursors", metadata,
    Column("name", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

signal_deliveries = Table(
    "signal_deliveries", metadata,
    Column("id", _SIGNAL_ID, primary_key=True, autoincrement=True),
    Column("dedupe", String(400), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("target", String(64), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("jti", String(64), nullable=False),
    Column("token", Text, nullable=False),
    Column("event", String(200), nullable=False),
    Column("tenant_id", String(64)),
    Column("subject", String(200)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("next_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("lease_until", Double),
    Column("delivered_at", Double),
    Column("last_error", String(500)),
    Index("ix_signal_deliveries_due", "status", "next_at"),
    Index("ix_signal_deliveries_target", "target", "status"),
)

signal_session_clients = Table(
    "signal_session_clients", metadata,
    Column("sid", String(64), primary_key=True),
    Column("client_id", String(64), primary_key=True),
    Column("at", Double, nullable=False),
)

risk_observations = Table(
    "risk_observations", metadata,
    Column("id", _SIGNAL_ID, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("at", Double, nullable=False),
    Column("tenant_id", String(64)),
    Column("user_id", String(64)),
    Column("family_id", String(64)),
    Column("address", String(64)),
    Column("user_agent", String(300)),
    Index("ix_risk_observations_family_kind", "family_id", "kind", "id"),
    Index("ix_risk_observations_address", "address", "at"),
)
