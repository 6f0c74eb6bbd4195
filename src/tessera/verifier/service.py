"""``VerifierService``: everything one service needs to verify tokens, from plain settings.

It wires a ``JwksCache``, a ``RevocationState`` kept current by a ``RevocationFollower``
(HTTP feed, Redis stream or an in-process bus), a ``Verifier``, the strict-route
staleness rule (deny or introspect), the decision log and metrics. ``start``/``aclose``,
``async with`` and ``lifespan`` (for Starlette/FastAPI) run the background parts.

``check`` is the plain function API; the ASGI middleware and FastAPI dependencies call
the same code, so every decision is made, logged and counted one way::

    verify (Verifier: signature, iss, aud, lifetime, local revocation state)
      → DPoP binding (RFC 9449 §7: bound tokens only with the DPoP scheme and a valid
        proof of their key; ``DPoPBinding``) → scopes
      → acr / auth_time (RFC 9470 step-up, when the route sets them)
      → freshness rule (every route: never loaded → refuse; within the route's bound →
        as is; past it → deny 503 or introspect, or, on a route that opted in with
        ``accept_stale``, accept — logged and counted as ``stale_accepted``)
      → tenant / owner → record (access.allowed | access.denied, metrics)

The bounds are ``max_staleness`` (every route, 30 s) and ``strict_max_staleness``
(strict routes, 10 s); freshness is proven by watermarks (``tessera.core.freshness``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Any, Final

import httpx
from prometheus_client import CollectorRegistry

from tessera.bus.ports import EventBus
from tessera.core.clock import Clock, SystemClock
from tessera.observability.tracing import record_decision
from tessera.verifier._claims import (
    check_claims,
    check_owner,
    check_scopes,
    check_tenant,
    check_user_authentication,
)
from tessera.verifier._introspection import IntrospectionClient
from tessera.verifier._mtls import check_certificate_binding
from tessera.verifier._policy import VerificationPolicy
from tessera.verifier._reference import REFERENCE_ALG, ReferenceTokens
from tessera.verifier._token import VerifiedToken, parse_claims
from tessera.verifier.decisions import (
    ALLOWED_INTROSPECTED,
    ALLOWED_STALE,
    ALLOWED_VALID,
    Decision,
    DecisionLog,
    hash_token,
)
from tessera.verifier.dpop import BEARER_PRESENTATION, DPoPBinding, Presentation
from tessera.verifier.driver import Verifier
from tessera.verifier.errors import (
    KEYS_UNAVAILABLE,
    Denied,
    KeysUnavailable,
    MissingToken,
    Reason,
    Unavailable,
    label_of,
)
from tessera.verifier.jwks import JwksCache
from tessera.verifier.metrics import VerifierMetrics
from tessera.verifier.revocation.acks import AckReporter, default_verifier_id
from tessera.verifier.revocation.follower import EventSource, RevocationFollower
from tessera.verifier.revocation.sources import BusSource, HttpFeedSource, RedisStreamSource
from tessera.verifier.revocation.state import RevocationState
from tessera.verifier.settings import VerifierSettings

__all__ = ["Attempt", "VerifierService"]

_log = logging.getLogger("tessera.verifier")
_MAX_POLICIES: Final = 256
_STALE_WARNING_EVERY: Final = 10.0
"""Seconds between two warnings about accepting while stale, per route."""


class VerifierService:
    """Verification for one service. One instance per process (it owns connections)."""

    def __init__(self, settings: VerifierSettings, *, clock: Clock | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 bus: EventBus | None = None, event_source: EventSource | None = None,
                 registry: CollectorRegistry | None = None,
                 logger: logging.Logger | None = None,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        """``transport`` serves every HTTP call (JWKS, feed, introspection; tests pass a
        ``MockTransport``); ``event_source`` overrides ``settings.source``; ``registry``
        defaults to a fresh ``CollectorRegistry``; ``logger`` to ``tessera.audit``."""
        self.settings = settings
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.policy = VerificationPolicy(settings.issuer, settings.audience,
                                         leeway=settings.leeway,
                                         acr_levels=tuple(settings.acr_levels))
        self.state = RevocationState()
        self.jwks = JwksCache(settings.issuer, clock=self.clock, transport=transport,
                              jwks_uri=settings.jwks_uri or f"{settings.base_url}/jwks",
                              max_age=settings.jwks_max_age,
                              min_refetch_interval=settings.jwks_min_refetch)
        self.references = self._references(transport)
        self.verifier = Verifier(self.policy, jwks=self.jwks, clock=self.clock,
                                 state=self.state, references=self.references)
        source = event_source if event_source is not None else self._source(transport, bus)
        self.metrics = VerifierMetrics(registry)
        self.follower = (RevocationFollower(self.state, source, clock=self.clock,
                                            on_applied=self.metrics.observe_applied)
                         if source is not None else None)
        self.reporter = self._reporter(source)
        if self.reporter is not None and self.follower is not None:
            self.follower.on_progress = self.reporter.wake
        self._stale_warned: dict[str | None, float] = {}
        self.introspection = self._introspection(transport)
        self.dpop = DPoPBinding.from_settings(settings, self.clock)
        self.metrics.watch(self.state, clock=self.clock, jwks=self.jwks, follower=self.follower)
        self.decisions = DecisionLog(settings.service_name or settings.audience,
                                     clock=self.clock, logger=logger)
        self._timer = timer
        self._policies: dict[tuple[frozenset[str], str | None, int | None],
                             VerificationPolicy] = {}

    # -- lifecycle -------------------------------------------------------------------

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry holding this service's metrics (see ``metrics_app``)."""
        return self.metrics.registry

    async def start(self, *, wait: float | None = None) -> None:
        """Start following revocations and fetch the JWKS; wait up to ``wait`` seconds
        (default ``settings.startup_wait``) for the first snapshot. Never raises for an
        unreachable identity service: it keeps retrying, and strict routes fail closed."""
        wait = self.settings.startup_wait if wait is None else wait
        if self.follower is not None:
            self.follower.start()
        if self.reporter is not None:
            self.reporter.start()
        try:
            await self.jwks.get()
        except KeysUnavailable as exc:
            _log.warning("JWKS not available yet: %s", exc)
        if self.follower is not None and wait > 0:
            try:
                await asyncio.wait_for(self.follower.synced(), wait)
            except TimeoutError:
                _log.warning("revocation state not synced after %.1fs; continuing", wait)

    async def aclose(self) -> None:
        if self.reporter is not None:
            await self.reporter.aclose()
        if self.follower is not None:
            await self.follower.aclose()
        if self.introspection is not None:
            await self.introspection.aclose()
        if self.references is not None:
            await self._reference_client.aclose()
        await self.dpop.aclose()
        await self.verifier.aclose()

    async def __aenter__(self) -> VerifierService:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """A Starlette/FastAPI ``lifespan``: starts and stops the service and registers it
        as ``app.state.tessera_verifier`` (where the FastAPI dependencies find it)."""
        state = getattr(app, "state", None)
        if state is not None:
            state.tessera_verifier = self
        await self.start()
        try:
            yield
        finally:
            await self.aclose()

    def install(self, app: Any) -> None:
        """Register this service on a Starlette ``app`` (``app.state``). Call before the
        app starts; ``lifespan`` still runs the background parts. FastAPI apps use
        ``tessera.verifier.fastapi.install``, which also sends refusals as OAuth JSON."""
        app.state.tessera_verifier = self

    # -- deciding --------------------------------------------------------------------

    def lag(self) -> float:
        """Seconds since the newest watermark the revocation state holds (``inf``: none)."""
        return self.state.lag(self.clock.now())

    def bound(self, strict: bool) -> float:
        """The staleness bound of a route (seconds)."""
        settings = self.settings
        if strict:
            return min(settings.strict_max_staleness, settings.max_staleness)
        return settings.max_staleness

    def is_stale(self, *, strict: bool = False) -> bool:
        """Past the bound of an ordinary (or strict) route, or never loaded."""
        return not self.state.loaded or self.state.is_stale(self.clock.now(),
                                                            self.bound(strict))

    def readiness(self) -> list[str]:
        """What this service still lacks to decide (empty: ready): the JWKS, and with a
        revocation source, the first snapshot. A readiness probe, not a freshness check:
        once loaded, a service whose feed goes quiet stays ready (its routes fail closed
        by themselves past their bounds), so an identity-service outage does not empty
        every load balancer at once."""
        missing = []
        if self.jwks.keys is None:
            missing.append("jwks")
        if self.follower is not None and not self.state.loaded:
            missing.append("revocation_snapshot")
        return missing

    async def check(self, token: str | None, *, scopes: Iterable[str] = (),
                    strict: bool | None = None, tenant: str | None = None,
                    owner: str | None = None, route: str | None = None,
                    correlation_id: str | None = None, min_acr: str | None = None,
                    max_auth_age: int | None = None,
                    presentation: Presentation | None = None,
                    accept_stale: bool = False) -> VerifiedToken:
        """The plain function API: the verified token, or ``Denied`` (with ``status``,
        ``error``, ``description``). One decision event and one metric sample per call.

        ``strict`` (default ``settings.strict_by_default``) applies the tighter staleness
        bound; ``accept_stale`` (never with ``strict``) accepts past the bound, logged and
        counted — a verifier that never loaded a snapshot still refuses;
        ``tenant`` requires ``tid``, ``owner`` requires ``sub`` to equal that value;
        ``min_acr``/``max_auth_age`` refuse a weaker or older authentication with
        ``StepUpRequired`` (RFC 9470, 401 ``insufficient_user_authentication``);
        ``presentation`` says how the token came (scheme, DPoP proofs, method, URL;
        default: Bearer, so a DPoP-bound token is refused).
        """
        attempt = self.attempt(route=route, correlation_id=correlation_id)
        await attempt.verify(token, scopes=scopes, strict=strict, min_acr=min_acr,
                             max_auth_age=max_auth_age, presentation=presentation,
                             accept_stale=accept_stale)
        attempt.require(tenant=tenant, owner=owner)
        return attempt.allow()

    def attempt(self, *, route: str | None = None,
                correlation_id: str | None = None) -> Attempt:
        """Start a decision made in steps (``verify`` → ``require`` → ``allow``)."""
        return Attempt(self, route, correlation_id, self._timer())

    async def verify_locally(self, token: str) -> VerifiedToken:
        """Signature, ``iss``, ``aud``, lifetime and the local revocation state; no scopes,
        no staleness rule, nothing recorded."""
        try:
            return await self.verifier.verify(token)
        except KeysUnavailable as exc:
            raise Unavailable(KEYS_UNAVAILABLE, str(exc)) from None

    async def freshness_rule(self, token: str, verified: VerifiedToken,
                             policy: VerificationPolicy, *, strict: bool,
                             accept_stale: bool = False, route: str | None = None
                             ) -> tuple[VerifiedToken, str]:
        """DESIGN §3 for every route. Never loaded → refuse (503) or introspect; within
        the route's bound → as is; past it → refuse or introspect, unless the route opted
        in with ``accept_stale`` (ordinary routes only: logged, counted as
        ``stale_accepted``). Returns the token to use and the allowed-reason."""
        if not self.state.loaded:
            return await self._refuse(token, verified, policy,
                                      "no revocation snapshot loaded yet")
        lag = self.lag()
        if lag <= self.bound(strict):
            return verified, ALLOWED_VALID
        if accept_stale and not strict:
            self._warn_stale(route, lag)
            return verified, ALLOWED_STALE
        return await self._refuse(token, verified, policy, f"revocation lag {lag:.1f}s")

    async def _refuse(self, token: str, verified: VerifiedToken, policy: VerificationPolicy,
                      detail: str) -> tuple[VerifiedToken, str]:
        if self.references is not None and verified.alg == REFERENCE_ALG:
            # a reference token: the issuer is asked anyway, past the cache
            return (await self.references.verify(token, policy=policy, state=self.state,
                                                 now=self.clock.now(), use_cache=False),
                    ALLOWED_INTROSPECTED)
        if self.introspection is None:
            raise Denied(Reason.STALE_STATE, detail)
        return await self._introspect(token, verified, policy), ALLOWED_INTROSPECTED

    def _warn_stale(self, route: str | None, lag: float) -> None:
        now = self.clock.now()
        last = self._stale_warned.get(route)
        if last is None or now - last >= _STALE_WARNING_EVERY or now < last:
            if len(self._stale_warned) >= _MAX_POLICIES:
                self._stale_warned.clear()
            self._stale_warned[route] = now
            _log.warning("accepting tokens on %s with revocation state %.1fs old (past the "
                         "%.0fs bound; the route opted in with accept_stale)",
                         route or "a route", lag, self.bound(False))

    def policy_for(self, scopes: Iterable[str], *, min_acr: str | None = None,
                   max_auth_age: int | None = None) -> VerificationPolicy:
        """The service policy requiring ``scopes`` (and this authentication) as well
        (memoised). ``ValueError`` for a ``min_acr`` not in ``settings.acr_levels``."""
        wanted = scopes if isinstance(scopes, frozenset) else frozenset(scopes)
        key = (wanted, min_acr, max_auth_age)
        policy = self._policies.get(key)
        if policy is None:
            if len(self._policies) >= _MAX_POLICIES:
                self._policies.clear()
            policy = self._policies[key] = self.policy.requiring(wanted).stepping_up(
                min_acr=min_acr, max_auth_age=max_auth_age)
        return policy

    def record(self, decision: Decision) -> None:
        self.metrics.observe(decision)
        self.decisions.emit(decision)
        record_decision(decision, service=self.decisions.service)  # access.decision span

    def elapsed(self, started: float) -> float:
        return self._timer() - started

    async def _introspect(self, token: str, local: VerifiedToken,
                          policy: VerificationPolicy) -> VerifiedToken:
        """RFC 7662 fallback; the answer is checked like a token (iss, aud, time, local
        revocations, scopes) and must be about the same ``jti``."""
        assert self.introspection is not None
        counter = self.metrics.introspections
        try:
            claims = await self.introspection.introspect(token)
        except Unavailable:
            counter.labels("error").inc()
            raise
        if claims is None:
            counter.labels("inactive").inc()
            raise Denied(Reason.TOKEN_REVOKED, "introspection: inactive")
        counter.labels("active").inc()
        answer = parse_claims(dict(claims), kid=local.kid, alg=local.alg)
        if answer.jti != local.jti:
            raise Denied(Reason.MALFORMED, "introspection answered about another token")
        check_claims(answer, policy, self.clock.now())
        self.state.check(answer)
        check_scopes(answer, policy)
        check_user_authentication(answer, policy, self.clock.now())
        return answer

    def _source(self, transport: httpx.AsyncBaseTransport | None,
                bus: EventBus | None) -> EventSource | None:
        settings = self.settings
        if settings.source == "none":
            return None
        if settings.source == "bus":
            if bus is None:
                raise ValueError("source 'bus' needs VerifierService(..., bus=...)")
            return BusSource(bus)
        assert settings.client_id and settings.client_secret
        http = HttpFeedSource(settings.base_url, client_id=settings.client_id,
                              client_secret=settings.client_secret.get_secret_value(),
                              transport=transport,
                              heartbeat_timeout=settings.feed_heartbeat_timeout)
        if settings.source == "http":
            return http
        assert settings.redis_url
        return RedisStreamSource(settings.redis_url, snapshot_from=http,
                                 stream=settings.redis_stream)

    def _reporter(self, source: EventSource | None) -> AckReporter | None:
        """Report what was applied over the feed's own authenticated HTTP client."""
        settings = self.settings
        http = source.http if isinstance(source, RedisStreamSource) else source
        if not settings.report_applied or not isinstance(http, HttpFeedSource):
            return None
        service = settings.service_name or settings.audience
        return AckReporter(http.client, f"{http.base_url}/revocations/acks",
                           verifier_id=settings.verifier_id or default_verifier_id(service),
                           service=service, state=self.state, clock=self.clock,
                           interval=settings.report_interval, delay=settings.report_delay,
                           jitter=settings.report_jitter)

    def _references(self, transport: httpx.AsyncBaseTransport | None
                    ) -> ReferenceTokens | None:
        settings = self.settings
        if not settings.reference_tokens:
            return None
        assert settings.client_id and settings.client_secret
        self._reference_client = IntrospectionClient(
            settings.introspection_endpoint or f"{settings.base_url}/introspect",
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
            transport=transport, timeout=settings.introspection_timeout)
        return ReferenceTokens(self._reference_client, ttl=settings.reference_cache_seconds)

    def _introspection(self, transport: httpx.AsyncBaseTransport | None
                       ) -> IntrospectionClient | None:
        settings = self.settings
        if settings.strict_fallback != "introspect":
            return None
        assert settings.client_id and settings.client_secret
        return IntrospectionClient(
            settings.introspection_endpoint or f"{settings.base_url}/introspect",
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
            transport=transport, timeout=settings.introspection_timeout)


class Attempt:
    """One access decision in steps. Every denial is recorded when raised; ``allow``
    records the success once (a second ``allow`` on the same attempt records nothing)."""

    def __init__(self, service: VerifierService, route: str | None,
                 correlation_id: str | None, started: float) -> None:
        self._service = service
        self.route = route
        self.correlation_id = correlation_id
        self._started = started
        self._raw: str | None = None
        self.token: VerifiedToken | None = None
        self._reason = ALLOWED_VALID
        self.decided = False

    async def verify(self, token: str | None, *, scopes: Iterable[str] = (),
                     strict: bool | None = None, min_acr: str | None = None,
                     max_auth_age: int | None = None,
                     presentation: Presentation | None = None,
                     accept_stale: bool = False) -> VerifiedToken:
        self._raw = token
        strict = self._service.settings.strict_by_default if strict is None else strict
        service = self._service
        try:
            if token is None:
                raise MissingToken()
            policy = service.policy_for(scopes, min_acr=min_acr, max_auth_age=max_auth_age)
            self.token = await service.verify_locally(token)
            await service.dpop.check(self.token, token, presentation or BEARER_PRESENTATION)
            check_certificate_binding(self.token, (presentation or BEARER_PRESENTATION
                                                   ).client_cert)
            check_scopes(self.token, policy)
            check_user_authentication(self.token, policy, service.clock.now())
            self.token, self._reason = await service.freshness_rule(
                token, self.token, policy, strict=strict, accept_stale=accept_stale,
                route=self.route)
        except Denied as denied:
            self.deny(denied)
            raise
        return self.token

    def require(self, *, tenant: str | None = None, owner: str | None = None) -> None:
        """Tenant and ownership rules on the verified token (``Forbidden``, 403)."""
        assert self.token is not None, "verify first"
        try:
            check_tenant(self.token, tenant)
            check_owner(self.token, owner)
        except Denied as denied:
            self.deny(denied)
            raise

    def allow(self) -> VerifiedToken:
        assert self.token is not None, "verify first"
        if not self.decided:
            self._finish(True, self._reason, 200)
        return self.token

    def deny(self, denied: Denied) -> None:
        """Record ``denied`` (the caller raises it)."""
        self._finish(False, label_of(denied), denied.status)

    def _finish(self, allowed: bool, reason: str, status: int) -> None:
        self.decided = True
        service = self._service
        service.record(Decision(allowed, reason, status, service.elapsed(self._started),
                                self.route, self.correlation_id, self.token,
                                hash_token(self._raw)))
