"""Store ports: one small Protocol per aggregate, grouped in a unit of work.

Guarantees every adapter gives (the contract suite in tests/contract checks them):
- Everything done through one ``UnitOfWork`` commits atomically or not at all; a state
  change and its revocation/audit rows are written in the same transaction (outbox).
- Conditional verbs (``rotate``, ``consume``, ``revoke``) are race-safe: of concurrent
  callers exactly one sees ``True`` / a result, the others see the state it left.
- A failure to reach the database raises ``StoreError``, never a driver exception; a
  lost conflict with a concurrent transaction raises its subclass ``StoreConflict``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

from tessera.core.clients import Client
from tessera.core.consents import Consent
from tessera.core.device import DeviceCode
from tessera.core.federation import ExternalIdentity, IdentityProvider, UpstreamSession
from tessera.core.refresh import RefreshFamily, RefreshToken
from tessera.core.revocation import RevocationEvent
from tessera.core.session_bounds import SessionPolicy
from tessera.core.sessions import AuthorizationCode, Session
from tessera.core.signals import Delivery, LogoutTarget, RiskObservation, SignalEvent, Stream
from tessera.core.tenants import Tenant
from tessera.core.users import User

__all__ = [
    "LEGACY_AUDIT_FIELDS",
    "AssertionReplayRepo",
    "AuditFilter",
    "AuditRecord",
    "AuditRepo",
    "AuditSink",
    "ClientRepo",
    "CodeRepo",
    "Completion",
    "ConsentRepo",
    "DeviceCodeRepo",
    "FactorRepo",
    "FederationRepo",
    "KeyRepo",
    "OutboxHandoff",
    "RecoveryCodeRepo",
    "ReferenceToken",
    "ReferenceTokenRepo",
    "RefreshRead",
    "RefreshRepo",
    "RefreshRotation",
    "RefreshRotations",
    "RefreshSnapshot",
    "ReportSink",
    "RevocationLog",
    "RoleRepo",
    "SealedFactor",
    "SealedKey",
    "SessionPolicyRepo",
    "SessionRepo",
    "SignalRepo",
    "Store",
    "StoreConflict",
    "StoreError",
    "StoredAudit",
    "TenantRepo",
    "UnitOfWork",
    "UserRepo",
    "VerifierRegistry",
    "VerifierReport",
]


class StoreError(Exception):
    """The store could not complete the operation (unreachable, timeout, conflict)."""


class StoreConflict(StoreError):
    """A concurrent transaction won a conflict (deadlock, serialisation failure, lock
    timeout). Nothing was committed; running the unit of work again may succeed."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit event as stored (DESIGN §7). Token hashes only, never tokens."""

    event: str
    at: float
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredAudit:
    """An audit row as stored: its id, record and chain link (tamper evidence)."""

    id: int
    record: AuditRecord
    chain_hash: str | None


LEGACY_AUDIT_FIELDS: Final = {"user_id": "subject", "tenant_id": "tenant",
                               "client_id": "client"}
"""Audit fields as older releases named them. Audit rows are hash chained and never
rewritten, so readers that match a field also match its older name."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What ``AuditRepo.search`` matches: every criterion given (None matches anything).
    ``user_id``, ``tenant_id`` and ``client_id`` compare the record's field of that name
    (or, for records written before the names were unified, the older field named in
    ``LEGACY_AUDIT_FIELDS``); ``since`` and ``until`` bound ``at`` inclusively."""

    event: str | None = None
    user_id: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True, slots=True)
class SealedFactor:
    """A user's second factor as stored: the secret sealed under the KEK (never in clear).

    ``confirmed_at`` is None while enrolment waits for its first code; ``last_step`` is
    the last accepted TOTP time step (RFC 6238 §5.2: a code is accepted once)."""

    user_id: str
    kind: str
    sealed_secret: str
    created_at: float
    confirmed_at: float | None = None
    last_step: int | None = None


@dataclass(frozen=True, slots=True)
class SealedKey:
    kid: str
    alg: str
    state: str
    sealed_private: str
    created_at: float
    changed_at: float


class ClientRepo(Protocol):
    async def add(self, client: Client) -> None: ...
    async def get(self, client_id: str) -> Client | None: ...
    async def all(self) -> list[Client]: ...

    async def set_disabled(self, client_id: str, disabled: bool) -> bool:
        """Disable or enable; True iff the client exists."""

    async def set_secret(self, client_id: str, secret_hash: str) -> bool:
        """Replace the secret's hash; True iff the client exists."""

    async def delete(self, client_id: str) -> bool:
        """Remove the client; True iff it existed."""


class UserRepo(Protocol):
    async def add(self, user: User) -> None:
        """Raises ``StoreError`` if the username is taken in the tenant."""

    async def get(self, user_id: str) -> User | None: ...
    async def by_username(self, tenant_id: str, username: str) -> User | None: ...

    async def search(self, *, username_prefix: str | None = None,
                     tenant_id: str | None = None, limit: int = 100) -> list[User]:
        """Users whose username starts with ``username_prefix`` (literally: ``%`` and
        ``_`` match only themselves), in ``tenant_id`` when given; ordered by username."""

    async def get_many(self, user_ids: Sequence[str]) -> list[User]:
        """The users that exist among ``user_ids``, in no particular order."""

    async def set_disabled(self, user_id: str, disabled: bool) -> bool:
        """Disable or enable a (not deleted) user; True iff there is one."""

    async def set_password(self, user_id: str, password_hash: str) -> bool:
        """Replace the password hash of a (not deleted) user; True iff there is one."""

    async def tombstone(self, user_id: str, *, at: float) -> bool:
        """Delete the user but keep the row other records name: disabled, no password,
        ``deleted_at`` set and the username freed (``deleted:<user_id>``). True iff this
        call deleted it (False: absent or deleted already)."""


class SessionRepo(Protocol):
    async def add(self, session: Session, *, browser_handle_hash: str | None) -> None: ...
    async def get(self, sid: str) -> Session | None: ...
    async def by_browser_handle(self, handle_hash: str) -> Session | None: ...
    async def touch(self, sid: str, at: float) -> None: ...

    async def revoke(self, sid: str, *, at: float, reason: str) -> bool:
        """Mark revoked. True if this call revoked it; False if already revoked/absent."""

    async def revoke_many(self, sids: Sequence[str], *, at: float,
                          reason: str) -> list[Session]:
        """Mark every still-active session of ``sids`` revoked in one statement; returns
        the sessions this call revoked (absent and already revoked ones are left out)."""

    async def acting_under_any(self, sids: Sequence[str]) -> list[Session]:
        """Active impersonation sessions opened under any of the sessions ``sids``."""

    async def bump_version(self, sid: str) -> int | None:
        """Increment ``sv`` atomically; return the new version (None if no such session)."""

    async def active_for_user(self, user_id: str) -> list[Session]: ...

    async def hold_user(self, user_id: str) -> None:
        """Hold the user until this unit of work ends: another unit that holds the same
        user waits, so "count the user's sessions, then add one" cannot interleave
        (the per-user session limit)."""

    async def acting_under(self, *, sid: str | None = None,
                           jti: str | None = None) -> list[Session]:
        """Active impersonation sessions opened under the administrator's session ``sid``
        or with the administrator's access token ``jti`` (either given one matches)."""

    async def step_up(self, sid: str, *, acr: str, amr: tuple[str, ...], auth_time: float,
                      browser_handle_hash: str | None = None) -> Session | None:
        """Record a fresh authentication in the same session: set ``acr``, ``amr`` and
        ``auth_time`` (and the browser handle, when given) of an *active* session; ``sid``,
        ``sv`` and its refresh families are untouched. Returns the updated session, or
        None (nothing written) if the session is absent or revoked."""

    async def active_for_tenant(self, tenant_id: str) -> list[Session]:
        """Every active session in the tenant, oldest first."""

    async def search(self, *, user_ids: Sequence[str] | None = None,
                     tenant_id: str | None = None, include_revoked: bool = False,
                     offset: int = 0, limit: int = 50) -> list[Session]:
        """Sessions newest first (``created_at``, then ``sid``): of ``user_ids`` when given
        (an empty list matches nothing), in ``tenant_id`` when given, active ones only
        unless ``include_revoked``. ``offset``/``limit`` page through the result."""


class SessionPolicyRepo(Protocol):
    """Per-tenant session bounds (``core.session_bounds``); a tenant without a row uses
    the global defaults."""

    async def get(self, tenant_id: str) -> SessionPolicy | None: ...

    async def put(self, policy: SessionPolicy) -> None:
        """Store the tenant's policy as given, replacing the previous one."""

    async def all(self) -> list[SessionPolicy]:
        """Ordered by tenant id."""


class DeviceCodeRepo(Protocol):
    """Device authorization requests (RFC 8628), by the hashes of their two codes."""

    async def add(self, code: DeviceCode) -> None:
        """Raises ``StoreError`` if either hash is taken (the caller draws new codes)."""

    async def get(self, device_code_hash: str) -> DeviceCode | None: ...
    async def by_user_code(self, user_code_hash: str) -> DeviceCode | None: ...

    async def decide(self, user_code_hash: str, *, approve: bool, user_id: str,
                     sid: str | None, at: float) -> bool:
        """Approve (with the session opened for the device) or deny a *pending* request
        that has not expired at ``at``. True iff this call decided it: of concurrent
        callers exactly one wins; a repeat is False."""

    async def poll(self, device_code_hash: str, *, at: float) -> DeviceCode | None:
        """Record a poll at ``at``; returns the request as it was *before* (its previous
        ``last_polled_at`` tells a too-fast poll), None if unknown."""

    async def slow_down(self, device_code_hash: str, *, by: int) -> None:
        """Raise the request's polling interval by ``by`` seconds (RFC 8628 §3.5)."""

    async def consume(self, device_code_hash: str, *, at: float) -> bool:
        """Mark an *approved* request consumed; True iff this call did (exactly one of
        concurrent callers: a device code yields tokens once)."""

    async def prune(self, before: float) -> int:
        """Delete requests that expired before ``before``; returns how many."""


class FactorRepo(Protocol):
    """Second factors, at most one per (user, kind)."""

    async def get(self, user_id: str, kind: str) -> SealedFactor | None: ...

    async def put_pending(self, factor: SealedFactor) -> bool:
        """Store an unconfirmed factor, replacing an unconfirmed one of the same user and
        kind. False, and nothing written, when a confirmed one exists."""

    async def confirm(self, user_id: str, kind: str, *, step: int, at: float) -> bool:
        """Confirm the pending factor and record ``step`` as used. True iff this call
        confirmed it: of concurrent callers exactly one wins; a repeat is False."""

    async def use_step(self, user_id: str, kind: str, step: int) -> bool:
        """Record ``step`` as the last accepted time step iff the factor is confirmed and
        ``step`` is later than the last accepted one. Of concurrent callers with the same
        step exactly one sees True; a replay (same or earlier step) is False."""

    async def replace(self, factor: SealedFactor) -> None:
        """Store ``factor`` as given (confirmed or not), replacing any factor of the same
        user and kind (administrative enrolment)."""

    async def delete(self, user_id: str, kind: str) -> bool:
        """Remove the user's factor of ``kind``; True iff there was one."""


class TenantRepo(Protocol):
    async def add(self, tenant: Tenant) -> bool:
        """Register a tenant; False (nothing written) if it exists."""

    async def get(self, tenant_id: str) -> Tenant | None: ...
    async def all(self) -> list[Tenant]:
        """Ordered by tenant id."""

    async def set_suspended(self, tenant_id: str, at: float | None) -> bool:
        """Suspend (``at``) or resume (None); True iff the state changed."""


class RoleRepo(Protocol):
    """Roles held by users (``core.roles``); a user's tenant is the role's tenant."""

    async def grant(self, user_id: str, role: str, *, at: float, by: str) -> bool:
        """True iff this call granted it (False: held already)."""

    async def revoke(self, user_id: str, role: str) -> bool:
        """True iff this call removed it."""

    async def of_user(self, user_id: str) -> frozenset[str]: ...

    async def of_users(self, user_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """Roles of each of ``user_ids`` that holds any."""

    async def revoke_all(self, user_id: str) -> int: ...


class ConsentRepo(Protocol):
    async def get(self, user_id: str, client_id: str) -> Consent | None: ...

    async def put(self, consent: Consent) -> None:
        """Store (replacing) the user's consent for the client."""

    async def delete_for_user(self, user_id: str) -> int: ...
    async def delete_for_client(self, client_id: str) -> int: ...


class RecoveryCodeRepo(Protocol):
    """One-time TOTP recovery codes, stored as keyed hashes."""

    async def replace(self, user_id: str, code_hashes: Sequence[str], *, at: float) -> None:
        """Drop every code of the user and store these."""

    async def use(self, user_id: str, code_hash: str, *, at: float) -> bool:
        """Mark an unused code used; True iff this call did (of concurrent callers with
        the same code exactly one wins)."""

    async def remaining(self, user_id: str) -> int: ...
    async def delete_for_user(self, user_id: str) -> int: ...


class CodeRepo(Protocol):
    async def add(self, code: AuthorizationCode) -> None: ...

    async def consume(self, code_hash: str, *, at: float) -> tuple[AuthorizationCode, bool] | None:
        """Mark the code used. Returns (code, first_use); first_use is False on a replay."""

    async def attach_family(self, code_hash: str, family_id: str) -> None: ...

    async def prune(self, before: float) -> int:
        """Delete codes that expired before ``before``; returns how many."""


class RefreshRepo(Protocol):
    async def add_family(self, family: RefreshFamily) -> None: ...
    async def get_family(self, family_id: str) -> RefreshFamily | None: ...
    async def add_token(self, token: RefreshToken) -> None: ...
    async def get_token(self, token_hash: str) -> RefreshToken | None: ...

    async def get_chain(self, token_hash: str
                        ) -> tuple[RefreshToken, RefreshFamily, Session] | None:
        """The token, its family and the family's session in one read (one round trip
        on the refresh hot path); None if any of them is missing."""

    async def rotate(self, token_hash: str, *, successor_hash: str, at: float) -> bool:
        """Mark the token rotated iff it is not yet. Exactly one concurrent caller wins."""

    async def revoke_family(self, family_id: str, *, at: float, reason: str) -> bool:
        """True if this call revoked the family."""

    async def families_for_session(self, sid: str) -> list[RefreshFamily]: ...

    async def revoke_families_of(self, sids: Sequence[str], *, at: float,
                                 reason: str) -> list[RefreshFamily]:
        """Revoke every still-active family of the sessions ``sids`` in one statement;
        returns the families this call revoked, oldest first."""

    async def families_for_sessions(self, sids: Sequence[str]) -> list[RefreshFamily]:
        """The families of every session in ``sids``, oldest first."""

    async def active_families_for_client(self, client_id: str) -> list[RefreshFamily]:
        """Every refresh family of the client that is not revoked."""

    async def last_refreshed(self, family_ids: Sequence[str]) -> dict[str, float]:
        """For each of ``family_ids`` that was refreshed at least once, when its newest
        refresh token was issued (a refresh issues generation ≥ 1). Others are absent."""


class RevocationLog(Protocol):
    async def append(self, event: RevocationEvent) -> int:
        """Append to the outbox; returns the event's sequence number (strictly increasing)."""

    async def append_many(self, events: Sequence[RevocationEvent]) -> list[int]:
        """Append in order, in one statement; returns their sequence numbers."""

    async def is_token_revoked(self, jti: str) -> bool: ...

    async def seq_of(self, kind: str, key: str) -> int | None:
        """The seq of the newest event of this kind and key still in the outbox."""
    async def revoked_before(self, grains: Sequence[tuple[str, str]]) -> float | None:
        """The latest moment up to which tokens are revoked at any of these grains
        (``(kind, key)``: ``user.revoked``/user id, ``tenant.revoked``/tenant id,
        ``client.revoked``/client id): each event's ``data["before"]``, else its ``at``.
        None if no event names them. A token issued at or before it is revoked."""

    async def since(self, seq: int, *, limit: int) -> list[RevocationEvent]:
        """Events with sequence > ``seq``, in order."""

    async def last_seq(self) -> int: ...

    async def last_before(self, at: float) -> int:
        """The seq of the newest event recorded before ``at`` (0: none)."""

    async def prune(self, before: float) -> int:
        """Delete events that stopped mattering before ``before`` (never the newest one,
        so sequence numbers are never reused); returns how many."""

    async def live(self, now: float) -> tuple[int, list[RevocationEvent]]:
        """A snapshot: the last sequence number and every event not yet expired at
        ``now`` (up to that sequence), read consistently."""


@dataclass(frozen=True, slots=True)
class VerifierReport:
    """What one verifier last said about itself (``POST /revocations/acks``): the ``seq``
    of the last event it applied. ``reported_at`` and ``first_seen`` are the identity
    service's clock; ``lag`` is the verifier's own staleness then (None: never fresh)."""

    client_id: str
    verifier_id: str
    service: str
    cursor: int
    reported_at: float
    first_seen: float
    lag: float | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    """When a revocation event had been applied by every live verifier."""

    seq: int
    at: float
    """The event's own ``at`` (its commit)."""
    completed_at: float
    """When the last live verifier's report covering it arrived (identity clock)."""
    verifiers: int
    """How many verifiers were live then (every one of them had applied it)."""

    @property
    def seconds(self) -> float:
        return max(0.0, self.completed_at - self.at)


class VerifierRegistry(Protocol):
    """Live verifiers and logout completion (DESIGN §3: "logout completed everywhere at T"
    is a recorded fact)."""

    async def report(self, *reports: VerifierReport) -> None:
        """Record reports, each keyed by (client_id, verifier_id); ``first_seen`` of an
        existing entry is kept."""

    async def verifiers(self) -> list[VerifierReport]:
        """Every known verifier (live or not), by client and id."""

    async def completed_through(self) -> int | None:
        """The highest seq with a completion record (None: none ever)."""

    async def add_completions(self, completions: Sequence[Completion]) -> None:
        """Record completions (each seq once: above ``completed_through``)."""

    async def record(self, reports: Sequence[VerifierReport],
                     completions: Sequence[Completion]) -> list[Completion]:
        """The writing half of a completion flush: ``report`` the ``reports`` and add
        those of ``completions`` above ``completed_through``, deciding that serially
        with every other process's ``record`` (completions decided from an older read
        are dropped where another process got there first); returns those added."""

    async def completions(self, seqs: Sequence[int]) -> dict[int, Completion]: ...

    async def prune(self, *, verifiers_before: float, completions_before: float) -> int:
        """Forget verifiers silent since ``verifiers_before`` and completions recorded
        before ``completions_before`` (never the newest); returns rows deleted."""


class AuditRepo(Protocol):
    async def append(self, records: Sequence[AuditRecord]) -> None:
        """Append in order, each row hash-chained to the previous one
        (``core.audit_chain``); concurrent appenders are serialised."""

    async def scan(self, *, after_id: int = 0, limit: int = 1000) -> list[StoredAudit]:
        """Rows with id > ``after_id``, oldest first."""

    async def query(self, *, event: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Newest first."""

    async def search(self, criteria: AuditFilter, *, before_id: int | None = None,
                     limit: int = 50) -> list[StoredAudit]:
        """Rows matching ``criteria`` with id < ``before_id`` (when given), newest first:
        pass the last id of a page as ``before_id`` to get the next, older one."""

    async def naming(self, values: Sequence[str], *, fields: Sequence[str],
                     limit: int = 500) -> list[StoredAudit]:
        """Rows where any of ``fields`` equals any of ``values`` (string comparison),
        oldest first, at most ``limit``: a token's or a request's trail."""


class KeyRepo(Protocol):
    async def all(self) -> list[SealedKey]:
        """In a write unit of work, also holds the ring until commit: concurrent
        read-modify-write units (bootstrap, rotation) run one after the other."""

    async def add(self, key: SealedKey) -> None: ...
    async def set_state(self, kid: str, state: str, *, at: float) -> None: ...


class FederationRepo(Protocol):
    """Upstream identity providers, the links from upstream subjects to users, sessions
    opened through an upstream, and replay memory for inbound logout tokens and security
    event tokens (``identity.federation``)."""

    async def add_provider(self, provider: IdentityProvider) -> bool:
        """Register a provider; False (nothing written) if its tenant has one of that name."""

    async def provider(self, tenant_id: str, name: str) -> IdentityProvider | None: ...
    async def provider_by_id(self, idp_id: str) -> IdentityProvider | None: ...

    async def providers(self, tenant_id: str | None = None) -> list[IdentityProvider]:
        """Every provider (of ``tenant_id`` when given), by tenant and name."""

    async def set_provider_disabled(self, idp_id: str, disabled: bool) -> bool:
        """True iff the provider exists."""

    async def delete_provider(self, idp_id: str) -> bool:
        """Remove the provider with its links and upstream-session rows (the local users
        and sessions stay); True iff it existed."""

    async def link(self, identity: ExternalIdentity) -> bool:
        """Link an upstream subject to a user; False (nothing written) if it is linked."""

    async def linked(self, idp_id: str, subject: str) -> ExternalIdentity | None: ...

    async def update_profile(self, idp_id: str, subject: str, *, profile: dict[str, Any],
                             profile_hash: str, at: float) -> bool:
        """Store the newest normalised profile of a link; True iff the link exists."""

    async def profile_of(self, user_id: str) -> dict[str, Any] | None:
        """The profile of the user's most recently updated link (None: not federated)."""

    async def add_upstream_session(self, session: UpstreamSession) -> None:
        """Record (or, after a re-authentication at the upstream, replace) the upstream
        session behind a local session."""

    async def upstream_session(self, sid: str) -> UpstreamSession | None: ...

    async def sessions_for_upstream(self, idp_id: str, *, upstream_sid: str | None = None,
                                    subject: str | None = None) -> list[str]:
        """Local sids opened through ``idp_id`` matching the upstream ``sid`` and/or
        ``sub`` given (both given: both must match); none given matches nothing."""

    async def remember_jti(self, idp_id: str, jti: str, *, expires_at: float) -> bool:
        """Record an inbound token's ``jti``; True iff it was not seen before (of
        concurrent callers exactly one wins). Entries past ``expires_at`` may be pruned."""

    async def prune_jtis(self, before: float) -> int: ...


@dataclass(frozen=True, slots=True)
class ReferenceToken:
    """An opaque access token (only its SHA-256 kept) and the claims it stands for."""

    token_hash: str
    jti: str
    client_id: str
    tenant_id: str | None
    sid: str | None
    claims: dict[str, Any]
    expires_at: float


class ReferenceTokenRepo(Protocol):
    async def add(self, token: ReferenceToken) -> None: ...
    async def get(self, token_hash: str) -> ReferenceToken | None:
        """Also when expired: the caller judges times (and revocation) itself."""

    async def prune(self, before: float) -> int:
        """Delete tokens that expired before ``before``; returns how many."""


class AssertionReplayRepo(Protocol):
    async def use(self, client_id: str, jti: str, *, expires_at: float, now: float) -> bool:
        """Record a client assertion's ``jti`` until ``expires_at``. False if it was
        already used and has not expired: of concurrent callers exactly one sees True."""

    async def prune(self, before: float) -> int: ...
class SignalRepo(Protocol):
    """Outbound signals (``core.signals``): back-channel logout registrations, SSF
    streams and subjects, the signal outbox, fan-out cursors, durable deliveries and
    risk observations."""

    async def set_logout(self, client_id: str, target: LogoutTarget | None) -> None:
        """Register (replacing) or, with None, remove a client's back-channel logout URI."""

    async def logout_targets(self, client_ids: Sequence[str]) -> dict[str, LogoutTarget]: ...

    async def join_session(self, sid: str, client_id: str, *, at: float) -> None:
        """Record that the client was issued tokens in the session (idempotent)."""

    async def session_clients(self, sid: str) -> list[str]:
        """The clients that were issued tokens in the session, in order of joining."""

    async def add_stream(self, stream: Stream) -> None: ...
    async def get_stream(self, stream_id: str) -> Stream | None: ...

    async def streams(self, *, client_id: str | None = None) -> list[Stream]:
        """Streams of ``client_id`` (every stream when None), oldest first."""

    async def replace_stream(self, stream: Stream) -> bool:
        """Store ``stream`` over the one with its id; True iff it existed."""

    async def delete_stream(self, stream_id: str) -> bool:
        """Remove the stream, its subjects and its undelivered events; True iff it existed."""

    async def add_subject(self, stream_id: str, key: str, subject: dict[str, Any]) -> None:
        """Idempotent."""

    async def remove_subject(self, stream_id: str, key: str) -> bool: ...
    async def stream_subjects(self, stream_id: str) -> set[str]: ...

    async def record(self, event: SignalEvent) -> None:
        """Append to the signal outbox (in the caller's transaction)."""

    async def events_since(self, after: int, *, limit: int) -> list[SignalEvent]: ...

    async def cursor(self, name: str) -> int:
        """The fan-out position ``name`` (0 when never moved)."""

    async def advance(self, name: str, *, old: int, new: int) -> bool:
        """Move the cursor iff it is still at ``old``; of concurrent callers one wins."""

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        """Insert; a delivery whose ``dedupe`` exists is skipped. Returns how many new."""

    async def has_due(self, *, now: float) -> bool:
        """True if ``claim`` at ``now`` would find a delivery (a cheap read)."""

    async def claim(self, *, now: float, lease: float, limit: int) -> list[Delivery]:
        """Pending push deliveries due at ``now`` and not leased, leased until ``now +
        lease`` and their attempt counted. Each is claimed by one caller only."""

    async def settle(self, delivery_id: int, *, status: str, at: float,
                     next_at: float | None = None, error: str | None = None) -> None:
        """``delivered`` / ``dead`` (final) or ``pending`` again at ``next_at``; the
        lease ends."""

    async def pending_for(self, target: str, *, limit: int) -> list[Delivery]:
        """Undelivered poll deliveries of a stream, oldest first."""

    async def acknowledge(self, target: str, jtis: Sequence[str], *, at: float,
                          error: str | None = None) -> int:
        """Mark a stream's deliveries acknowledged (or, with ``error``, dead)."""

    async def deliveries(self, *, status: str | None = None, channel: str | None = None,
                         tenant_id: str | None = None, limit: int = 100) -> list[Delivery]:
        """Newest first."""

    async def requeue(self, delivery_id: int, *, at: float) -> bool:
        """A dead letter back to pending (same token, same jti); True iff it was dead."""

    async def observe(self, observation: RiskObservation) -> None: ...

    async def observations(self, *, since: float, family_id: str | None = None,
                           address: str | None = None, kind: str | None = None,
                           limit: int = 1000) -> list[RiskObservation]:
        """Newest first."""

    async def prune(self, before: float) -> int:
        """Forget settled deliveries, processed signal events and observations older
        than ``before``."""


class UnitOfWork(Protocol):
    clients: ClientRepo
    users: UserRepo
    sessions: SessionRepo
    factors: FactorRepo
    codes: CodeRepo
    refresh: RefreshRepo
    revocations: RevocationLog
    audit: AuditRepo
    keys: KeyRepo
    verifiers: VerifierRegistry
    tenants: TenantRepo
    roles: RoleRepo
    consents: ConsentRepo
    recovery_codes: RecoveryCodeRepo
    federation: FederationRepo
    session_policies: SessionPolicyRepo
    device_codes: DeviceCodeRepo
    reference_tokens: ReferenceTokenRepo
    assertion_jtis: AssertionReplayRepo
    signals: SignalRepo


@runtime_checkable
class AuditSink(Protocol):
    """A store that commits audit batches by a path of its own, cheaper than a unit of
    work (``SqlStore.append_audit``); ``AuditLog`` uses it when the store is one."""

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        """Commit ``records`` (chained) in one transaction."""


@runtime_checkable
class OutboxSink(Protocol):
    """A store that commits audit records and revocation events of a transaction that
    reads nothing by a path of its own (``SqlStore.append_outbox``); ``application.
    transaction.appending`` uses it when the store is one."""

    async def append_outbox(self, records: Sequence[AuditRecord],
                            events: Sequence[RevocationEvent]) -> list[RevocationEvent]:
        """Commit both in one transaction; the events with their seqs, in order."""


@runtime_checkable
class ReportSink(Protocol):
    """A store that records a completion flush (``VerifierRegistry.record``) by a path
    of its own (``SqlStore.record_reports``: one function on SQLite);
    ``identity.completion.LogoutCompletion`` uses it when the store is one."""

    async def record_reports(self, reports: Sequence[VerifierReport],
                             completions: Sequence[Completion]) -> list[Completion]:
        """``VerifierRegistry.record`` in a transaction of its own."""


@dataclass(frozen=True, slots=True)
class RefreshRead:
    """What the rotation's one read fetches besides the chain: the family's ``refresh``
    risk observations at or after ``recent_since`` (the newest ``recent_limit``; how many
    of those are at or after ``burst_since``, and the newest one's address and user
    agent), and which of ``marks`` — (kind, since) pairs — the family holds."""

    recent_since: float
    recent_limit: int
    burst_since: float
    marks: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class RefreshSnapshot:
    """Everything a refresh is judged on, read at once (one statement): the token, its
    family and session, the family's user and the user's tenant (None: absent or not
    registered), the roles the user holds now, the own session policy of the session's
    tenant, and — when asked — the family's risk observations (``RefreshRead``)."""

    token: RefreshToken
    family: RefreshFamily
    session: Session
    user: User | None
    tenant: Tenant | None
    roles: frozenset[str]
    session_policy: SessionPolicy | None
    refreshes_in_burst: int = 0
    last_refresh: tuple[str | None, str | None] | None = None
    """(address, user agent) of the newest recent ``refresh`` observation, if any."""
    marks: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RefreshRotation:
    """One rotation's writes: mark ``token_hash`` rotated to ``successor``, insert the
    successor, touch the session, record ``observation`` (if any) and append ``audit``
    to the chained trail."""

    token_hash: str
    successor: RefreshToken
    sid: str
    at: float
    audit: AuditRecord
    observation: RiskObservation | None = None


class RefreshRotations(Protocol):
    """The refresh hot path (``grants/refresh_token``): one read, one atomic write. The
    general path (``RefreshRepo`` in a unit of work) handles everything else."""

    async def read(self, token_hash: str, risk: RefreshRead | None = None
                   ) -> RefreshSnapshot | None:
        """The snapshot of ``token_hash`` (None if the token, family or session is
        missing). Not locked: the write re-checks what can race."""

    async def rotate(self, rotation: RefreshRotation) -> bool:
        """All of the rotation's writes in one transaction, iff the token is not rotated
        yet and neither its family nor its session is revoked; False (nothing written)
        otherwise. Of concurrent callers exactly one wins. The audit record joins the
        hash chain exactly as ``AuditRepo.append`` would append it."""


class OutboxHandoff(Protocol):
    """Receives this process's outbox commits as they happen (the outbox relay)."""

    def committing(self) -> float:
        """Called right before a commit that appended revocation events; returns the
        listener's time then. Every commit that ends before it has a lower seq (outbox
        writers are serialised until commit)."""

    def committed(self, events: Sequence[RevocationEvent], before: float) -> None:
        """The commit succeeded: ``events`` in seq order, ``before`` from ``committing``.
        Not called when the commit failed."""


class Store(Protocol):
    def refresh_rotations(self) -> AbstractAsyncContextManager[RefreshRotations]:
        """The refresh hot path on one connection (``RefreshRotations``)."""

    def unit_of_work(self, *, read_only: bool = False) -> AbstractAsyncContextManager[UnitOfWork]:
        """A transaction: commits when the block exits normally, rolls back on error."""

    def on_outbox_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every commit that appended revocation events."""

    def hand_off_outbox(self, listener: OutboxHandoff) -> None:
        """Hand every commit of this process that appended revocation events to
        ``listener``, with the events (seqs assigned), so it need not read them back."""

    async def close(self) -> None: ...
