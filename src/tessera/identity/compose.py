"""Composition root: builds every component of the identity service from ``Settings``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tessera.application.admin import AdminContext
from tessera.application.standing import TenantDirectory
from tessera.bus import InProcessBus
from tessera.bus.relay import OutboxRelay
from tessera.core.clock import Clock, SystemClock
from tessera.identity.completion import LogoutCompletion
from tessera.identity.dpop import build_proof_checker
from tessera.identity.federation.service import Federation
from tessera.identity.feed import RevocationFeed
from tessera.identity.key_sets import HttpKeySetSource
from tessera.identity.login import LoginService, PasswordHasher
from tessera.identity.login.bounds import SessionBounds, defaults_of
from tessera.identity.login.pending import PendingLogins
from tessera.identity.login.recovery import RecoveryCodes
from tessera.identity.login.totp import TotpService
from tessera.identity.revocation_mirror import RevocationMirror
from tessera.identity.throttles import Throttles, build_throttles
from tessera.keys import RingHolder, Sealer
from tessera.keys.derivation import derive_key
from tessera.keys.manager import KeyManager
from tessera.observability.audit import AuditLog
from tessera.observability.metrics import IdentityMetrics
from tessera.observability.tracing import token_observer
from tessera.protocol.client_assertion import AssertionRules, ClientAssertions
from tessera.protocol.clients import ClientAuthenticator, ClientDirectory
from tessera.protocol.oidc.id_token import IdTokenIssuer
from tessera.protocol.oidc.logout import LogoutEndpoint
from tessera.protocol.oidc.userinfo import UserInfoEndpoint
from tessera.protocol.rfc6749.authorize import AuthorizationEndpoint
from tessera.protocol.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from tessera.protocol.rfc6749.token_endpoint import GrantHandler, TokenEndpoint
from tessera.protocol.rfc7009 import RevocationEndpoint
from tessera.protocol.rfc7662 import IntrospectionEndpoint
from tessera.protocol.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from tessera.protocol.rfc8693 import (
    ExchangePolicy,
    Impersonation,
    ImpersonationPolicy,
    SubjectLoader,
    TokenExchangeGrant,
)
from tessera.protocol.rfc9068 import AccessTokenIssuer
from tessera.protocol.rfc9068.reference import ReferenceTokens
from tessera.protocol.rfc9449 import ProofChecker
from tessera.protocol.token_state import AccessTokenState
from tessera.settings import Settings
from tessera.store.ports import Store
from tessera.store.sql import SqlStore, create_store

if TYPE_CHECKING:
    from tessera.bus.redis_streams import RedisStreamsBus
    from tessera.identity.signals import Signals

__all__ = ["Identity", "build_identity", "key_manager_for"]



def key_manager_for(settings: Settings, store: Store, clock: Clock) -> KeyManager:
    tokens = settings.tokens
    retire_after = max(tokens.access_token_ttl, tokens.id_token_ttl) + tokens.leeway
    return KeyManager(store, Sealer.from_b64(settings.key_encryption_key()), clock,
                      algorithm=settings.keys.algorithm, retire_after=retire_after,
                      id_token_algorithm=settings.keys.id_token_algorithm)


def exchange_policies(settings: Settings) -> dict[str, ExchangePolicy]:
    return {
        client_id: ExchangePolicy(
            audiences=None if p.audiences is None
            else {aud: frozenset(scopes) for aud, scopes in p.audiences.items()},
            max_lifetime=p.max_lifetime, max_act_depth=p.max_act_depth)
        for client_id, p in settings.exchange.clients.items()
    }


def impersonation_policy(settings: Settings) -> ImpersonationPolicy:
    imp = settings.impersonation
    return ImpersonationPolicy(enabled=imp.enabled, scope=imp.scope, min_acr=imp.min_acr,
                               max_auth_age=imp.max_auth_age, max_lifetime=imp.max_lifetime)


@dataclass
class Identity:
    """Every component, wired. The HTTP app and the CLI only use what is here."""

    settings: Settings
    store: Store
    clock: Clock
    audit: AuditLog
    keys: RingHolder
    key_manager: KeyManager
    clients: ClientDirectory
    passwords: PasswordHasher
    login: LoginService
    totp: TotpService
    pending_logins: PendingLogins
    """The signed record carried from the password step to the TOTP step."""
    access_tokens: AccessTokenIssuer
    id_tokens: IdTokenIssuer
    token_state: AccessTokenState
    token: TokenEndpoint
    introspection: IntrospectionEndpoint
    revocation: RevocationEndpoint
    userinfo: UserInfoEndpoint
    authorize: AuthorizationEndpoint
    logout: LogoutEndpoint
    csrf_key: bytes
    bus: InProcessBus
    """Events of this process's relay: the SSE feed and in-process verifiers follow it."""
    relays: list[OutboxRelay]
    mirror: RevocationMirror
    """The in-memory revocation state introspection answers from when it is current."""
    feed: RevocationFeed
    metrics: IdentityMetrics
    tenants: TenantDirectory
    """Tenant suspension, cached for client authentication (``application.standing``)."""
    completion: LogoutCompletion
    """Verifier reports and logout completion (``tessera revoke --wait``, the console)."""
    federation: Federation
    """Upstream identity providers: logins, back-channel logout, security events."""
    admin: AdminContext
    """The administrative verbs the CLI, the admin API and the console share."""
    redis_bus: RedisStreamsBus | None = None
    dpop: ProofChecker | None = None
    """DPoP (RFC 9449) proof checking, None when ``dpop.enabled`` is off."""
    throttles: Throttles | None = None
    """Login, TOTP and client-authentication throttles (``identity/throttles.py``)."""
    outbox_listener: asyncio.Task[None] | None = None
    """What wakes the relays on another process's commit (``start_relays``)."""
    checkpointer: asyncio.Task[None] | None = None
    """SQLite in a file: WAL checkpoints off the commit path (``start_relays``)."""
    device_authorization: DeviceAuthorizationEndpoint | None = None
    """RFC 8628 device authorization endpoint, None when ``device.enabled`` is off."""
    key_sets: HttpKeySetSource | None = None
    """Clients' ``jwks_uri`` documents, fetched for client assertions (``key_sets``)."""
    signals: Signals | None = None
    """Back-channel logout, SSF and risk signals (``identity/signals``); None when
    ``signals.enabled`` is off."""

    async def reload_keys(self) -> None:
        self.keys.ring = await self.key_manager.load()

    def start_relays(self) -> None:
        """The background writers: outbox relays, and the verifier-report batcher; what
        wakes the relays on any process's commit: a LISTEN connection on PostgreSQL, a
        watch of the database's change counter on SQLite (while either works, the relays
        poll only at their heartbeat); on SQLite, the WAL checkpointer."""
        for relay in self.relays:
            relay.start()
        self.completion.start()
        if isinstance(self.store, SqlStore) and self.outbox_listener is None:
            relays = list(self.relays)
            signals = self.signals

            def wake() -> None:
                for relay in relays:
                    relay.notify()
                if signals is not None:  # other processes' commits: fan out at once
                    signals.fanout.notify()

            def connected(on: bool) -> None:
                for relay in relays:
                    relay.set_event_driven(on)

            watch = (self.store.listen_outbox(wake, connected=connected)
                     if self.store.outbox_channel is not None
                     else self.store.watch_outbox(wake, connected=connected))
            self.outbox_listener = asyncio.get_running_loop().create_task(watch)
            self.checkpointer = asyncio.get_running_loop().create_task(
                self.store.checkpoint_wal())
        if self.signals is not None:
            self.signals.start()

    async def stop_relays(self) -> None:
        """Stop what ``start_relays`` started (the store stays open)."""
        for task in (self.outbox_listener, self.checkpointer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.outbox_listener = self.checkpointer = None
        for relay in self.relays:
            await relay.aclose()
        await self.completion.aclose()
        if self.signals is not None:
            await self.signals.aclose()

    async def aclose(self) -> None:
        await self.admin.revoker.aclose()
        await self.stop_relays()
        if self.redis_bus is not None:
            await self.redis_bus.aclose()
        if self.dpop is not None:
            await self.dpop.replay.aclose()
        if self.throttles is not None:
            await self.throttles.aclose()
        await self.audit.aclose()
        await self.store.close()


async def build_identity(settings: Settings, *, store: Store | None = None,
                         clock: Clock | None = None,
                         passwords: PasswordHasher | None = None) -> Identity:
    clock = clock or SystemClock()
    store = store or create_store(settings.resolved_database_url)
    tok = settings.tokens
    max_body = settings.security.max_body_bytes
    audit = AuditLog(store, clock, log_json=settings.audit_log_json)
    metrics = IdentityMetrics()
    audit.add_listener(metrics.on_audit)
    key_manager = key_manager_for(settings, store, clock)
    await key_manager.bootstrap()
    keys = RingHolder(await key_manager.load())
    clients = ClientDirectory(store, clock)
    tenants = TenantDirectory(store, clock)
    throttles = build_throttles(settings)
    key_sets = HttpKeySetSource(issuer=settings.issuer)
    assertions = ClientAssertions(store, clock, key_sets, AssertionRules(
        issuer=settings.issuer, token_endpoint=f"{settings.issuer}/token",
        leeway=tok.leeway))
    authenticator = ClientAuthenticator(clients, throttles.client_auth, tenants=tenants,
                                        assertions=assertions)
    access = AccessTokenIssuer(keys, issuer=settings.issuer, ttl=tok.access_token_ttl,
                               references=ReferenceTokens(store))
    id_tokens = IdTokenIssuer(keys, issuer=settings.issuer, ttl=tok.id_token_ttl,
                              alg=settings.keys.id_token_algorithm)
    bus = InProcessBus()
    mirror = RevocationMirror(store, bus, clock, max_lag=tok.introspection_max_lag)
    store.on_outbox_commit(mirror.committed)
    state = AccessTokenState(access, store, clients, clock, tok.leeway, view=mirror)
    kek = settings.key_encryption_key()
    risk = None
    if settings.signals.enabled:  # risk signals (identity/signals/risk.py)
        from tessera.identity.signals.risk import RiskEngine

        risk = RiskEngine(store, audit, clock, settings=settings.signals,
                          token_ttl=float(tok.access_token_ttl), metrics=metrics)
    grants: list[GrantHandler] = [
        ClientCredentialsGrant(access, audit, clock, default_audience=settings.issuer),
        AuthorizationCodeGrant(store, access, id_tokens, audit, clock,
                               refresh_ttl=tok.refresh_token_ttl,
                               family_ttl=tok.refresh_family_ttl),
        RefreshTokenGrant(store, access, audit, clock,
                          derivation_key=derive_key(kek, "refresh-successor"),
                          refresh_ttl=tok.refresh_token_ttl,
                          grace_seconds=tok.refresh_grace_seconds,
                          retry_seconds=tok.refresh_retry_seconds,
                          session_defaults=defaults_of(settings.sessions), risk=risk),
        TokenExchangeGrant(
            access, SubjectLoader(state, store, keys, clock, issuer=settings.issuer,
                                  access_ttl=tok.access_token_ttl, leeway=tok.leeway),
            audit, clock, policies=exchange_policies(settings),
            default_policy=ExchangePolicy(max_act_depth=settings.exchange.max_act_depth),
            impersonation=Impersonation(store, audit, clock, impersonation_policy(settings))),
    ]
    device = None
    if settings.device.enabled:
        grants.append(DeviceCodeGrant(store, access, id_tokens, audit, clock,
                                      refresh_ttl=tok.refresh_token_ttl,
                                      family_ttl=tok.refresh_family_ttl))
        device = DeviceAuthorizationEndpoint(
            authenticator, store, audit, clock, issuer=settings.issuer,
            code_ttl=settings.device.code_ttl, interval=settings.device.interval,
            max_body=max_body)
    passwords = passwords or PasswordHasher()
    new_relay = functools.partial(OutboxRelay, store, poll_interval=settings.bus.poll_interval,
                                  heartbeat=settings.bus.heartbeat, clock=clock,
                                  on_error=metrics.on_relay_error)
    relays = [new_relay(bus)]
    redis_bus = None
    if settings.bus.redis_url:
        from tessera.bus.redis_streams import RedisStreamsBus

        redis_bus = RedisStreamsBus.from_url(settings.bus.redis_url, stream=settings.bus.stream,
                                             maxlen=settings.bus.stream_maxlen)
        relays.append(new_relay(redis_bus))
    for relay in relays:  # each publishes this process's commits without reading them back
        store.hand_off_outbox(relay)
    dpop = build_proof_checker(settings, clock, nonce_key=derive_key(kek, "dpop-nonce"))
    completion = LogoutCompletion(store, clock, metrics,
                                  live_seconds=settings.verifiers.live_seconds)
    identity = Identity(
        settings=settings, store=store, clock=clock, audit=audit, keys=keys,
        key_manager=key_manager, clients=clients, passwords=passwords,
        login=LoginService(store, passwords, audit, clock, by_account=throttles.login_account,
                           by_address=throttles.login_address,
                           bounds=SessionBounds(store, audit, clock,
                                                defaults=defaults_of(settings.sessions),
                                                token_ttl=tok.access_token_ttl,
                                                touch_interval=settings.sessions.touch_interval),
                           risk=risk),
        totp=TotpService(store, Sealer(derive_key(kek, "totp-secrets")), audit, clock,
                         issuer_name=urlsplit(settings.issuer).netloc or "Tessera",
                         throttle=throttles.totp,
                         recovery=RecoveryCodes(store, clock, derive_key(kek, "recovery-codes"),
                                                count=settings.account.recovery_codes)),
        pending_logins=PendingLogins(derive_key(kek, "pending-login"), clock),
        access_tokens=access, id_tokens=id_tokens, token_state=state,
        token=TokenEndpoint(authenticator, grants, max_body=max_body,
                            observer=token_observer(metrics.on_token_request), dpop=dpop,
                            url=f"{settings.issuer}/token"),
        metrics=metrics,
        introspection=IntrospectionEndpoint(
            authenticator, state, store, clock, max_body=max_body, issuer=settings.issuer,
            jwt_signer=lambda claims: keys.ring.sign(claims, typ="token-introspection+jwt")),
        revocation=RevocationEndpoint(authenticator, access, store, audit, clock,
                                      leeway=tok.leeway, max_body=max_body),
        userinfo=UserInfoEndpoint(state, store, issuer=settings.issuer, dpop=dpop),
        authorize=AuthorizationEndpoint(store, clients, audit, clock, issuer=settings.issuer,
                                        code_ttl=tok.authorization_code_ttl),
        logout=LogoutEndpoint(store, clients, id_tokens, audit, clock, leeway=tok.leeway,
                              token_ttl=tok.access_token_ttl),
        csrf_key=derive_key(kek, "csrf"),
        bus=bus, relays=relays, mirror=mirror, redis_bus=redis_bus, dpop=dpop, throttles=throttles,
        tenants=tenants, key_sets=key_sets,
        feed=RevocationFeed(authenticator, store, bus, clock, heartbeat=settings.bus.heartbeat,
                            completion=completion),
        completion=completion, device_authorization=device,
        federation=Federation(store, audit, clock, Sealer.from_b64(kek), issuer=settings.issuer,
                              timeout=settings.federation.timeout, leeway=tok.leeway,
                              token_ttl=tok.access_token_ttl),
        admin=AdminContext(store, audit, clock, passwords, clients, tenants,
                           issuer=settings.issuer, token_ttl=tok.access_token_ttl,
                           allowed_networks=tuple(settings.signals.allowed_networks)),
    )
    if settings.signals.enabled:
        from tessera.identity.signals import build_signals

        identity.signals = build_signals(identity)
    return identity
