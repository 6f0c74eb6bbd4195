"""Risk signals: observations per login and refresh, detections, and the tenant policy.

Observations keep the client address truncated per ``signals.risk_ipv4_prefix`` /
``risk_ipv6_prefix`` (a /24 and a /48 by default: enough to tell networks apart, not
enough to name a household) and the user agent.

Detections (thresholds in ``SignalSettings``), each raised once per family (or address)
and window:
- ``refresh_burst``: ``refresh_burst_count`` refreshes of one family within
  ``refresh_burst_seconds`` (a stolen token hammered by a script);
- ``reuse_from_addresses``: rotated tokens of one family presented from
  ``reuse_addresses`` distinct addresses within ``reuse_window_seconds``;
- ``family_context_changed``: a family refreshed from another address *and* another user
  agent than its previous refresh, within ``refresh_burst_seconds * 60`` of it;
- ``failed_logins_many_accounts``: ``failed_login_accounts`` distinct accounts failing to
  sign in from one address within ``failed_login_window_seconds``.

Each detection is a ``risk.detected`` audit event (``detection``, ``action``, family,
subject, tenant, address), the ``tessera_risk_signals`` counter, an SSF
``risk-level-change`` event (for a user) and the tenant's policy: ``notify`` (only
that), ``step_up`` (the family's next refresh is refused: sign in again) or ``revoke``
(the family ends through the outbox, so back-channel logout and SSF follow).
"""

from __future__ import annotations

from typing import Any

from tessera.application import lifecycle, signal_events
from tessera.application.transaction import Transaction, transaction
from tessera.core.clock import Clock
from tessera.core.refresh import RefreshFamily
from tessera.core.signals import RiskObservation, truncate_address
from tessera.observability import events
from tessera.observability.audit import AuditLog
from tessera.observability.metrics import IdentityMetrics
from tessera.protocol.risk import RequestContext
from tessera.settings import SignalSettings
from tessera.store.ports import RefreshRead, RefreshSnapshot, Store, UnitOfWork

__all__ = ["DETECTIONS", "RiskEngine"]

DETECTIONS = ("refresh_burst", "reuse_from_addresses", "family_context_changed",
              "failed_logins_many_accounts")
_STEP_UP = "step_up"


def _mark(detection: str) -> str:
    """The observation kind that records a detection as raised for a family."""
    return f"d:{DETECTIONS.index(detection)}"


class RiskEngine:
    def __init__(self, store: Store, audit: AuditLog, clock: Clock, *,
                 settings: SignalSettings, token_ttl: float,
                 metrics: IdentityMetrics) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._s = settings
        self._ttl = token_ttl
        self.detected = metrics.risk_signals

    def _address(self, ctx: RequestContext) -> str | None:
        return truncate_address(ctx.address, ipv4_bits=self._s.risk_ipv4_prefix,
                                ipv6_bits=self._s.risk_ipv6_prefix)

    def action_for(self, tenant_id: str | None) -> str:
        policy = self._s.risk_policy.get(tenant_id or "default", self._s.default_risk)
        return policy.action

    # -- the port (protocol.risk.RiskObserver) ---------------------------------------------

    async def step_up_required(self, uow: UnitOfWork, family_id: str) -> bool:
        marks = await uow.signals.observations(since=0.0, family_id=family_id, kind=_STEP_UP,
                                               limit=1)
        return bool(marks)

    async def refreshed(self, tx: Transaction, family: RefreshFamily,
                        ctx: RequestContext) -> None:
        now = self._clock.now()
        address = self._address(ctx)
        recent = await tx.uow.signals.observations(
            since=now - max(self._s.refresh_burst_seconds * 60, self._s.refresh_burst_seconds),
            family_id=family.family_id, kind="refresh", limit=self._s.refresh_burst_count)
        await self._observe(tx.uow, "refresh", family, address, ctx.user_agent, now)
        burst = [o for o in recent if o.at >= now - self._s.refresh_burst_seconds]
        if len(burst) + 1 >= self._s.refresh_burst_count:
            await self._detect(tx, "refresh_burst", family, address, now,
                               {"refreshes": len(burst) + 1,
                                "seconds": self._s.refresh_burst_seconds})
        if recent:
            last = recent[0]
            if last.address != address and last.user_agent != ctx.user_agent \
                    and last.address is not None and address is not None:
                await self._detect(tx, "family_context_changed", family, address, now,
                                   {"previous_address": last.address,
                                    "seconds_since": round(now - last.at, 1)})

    def refresh_read(self, now: float) -> RefreshRead:
        s = self._s
        raised_since = now - s.reuse_window_seconds  # as ``_detect`` asks ``_raised``
        return RefreshRead(
            recent_since=now - max(s.refresh_burst_seconds * 60, s.refresh_burst_seconds),
            recent_limit=s.refresh_burst_count, burst_since=now - s.refresh_burst_seconds,
            marks=((_STEP_UP, 0.0), (_mark("refresh_burst"), raised_since),
                   (_mark("family_context_changed"), raised_since)))

    def quiet_refresh(self, family: RefreshFamily, ctx: RequestContext, now: float,
                      snapshot: RefreshSnapshot) -> RiskObservation | None:
        """``refreshed`` judged on the snapshot (same rules, same reads)."""
        if _STEP_UP in snapshot.marks:
            return None
        address = self._address(ctx)
        if (snapshot.refreshes_in_burst + 1 >= self._s.refresh_burst_count
                and _mark("refresh_burst") not in snapshot.marks):
            return None
        if snapshot.last_refresh is not None:
            last_address, last_agent = snapshot.last_refresh
            if last_address != address and last_agent != ctx.user_agent \
                    and last_address is not None and address is not None \
                    and _mark("family_context_changed") not in snapshot.marks:
                return None
        return RiskObservation(kind="refresh", at=now, tenant_id=family.tenant_id,
                               user_id=family.user_id, family_id=family.family_id,
                               address=address, user_agent=ctx.user_agent)

    async def reused(self, tx: Transaction, family: RefreshFamily,
                     ctx: RequestContext) -> None:
        await self._reuse(tx, family, ctx)

    async def refused(self, token_hash: str, ctx: RequestContext) -> None:
        async with self._store.unit_of_work(read_only=True) as uow:  # most: garbage
            token = await uow.refresh.get_token(token_hash)
            family = await uow.refresh.get_family(token.family_id) if token else None
        if token is None or family is None:
            return
        if token.rotated_at is None and family.revoked_at is None:
            return  # refused for another reason (client, binding, standing)
        async with transaction(self._store, self._audit) as tx:
            await self._reuse(tx, family, ctx)

    async def login(self, *, tenant_id: str, user_id: str | None, account_hash: str,
                    ok: bool, ctx: RequestContext) -> None:
        now = self._clock.now()
        address = self._address(ctx)
        async with transaction(self._store, self._audit) as tx:
            await tx.uow.signals.observe(RiskObservation(
                kind="login" if ok else "login_failed", at=now, tenant_id=tenant_id,
                user_id=user_id if ok else account_hash[:64], family_id=None,
                address=address, user_agent=ctx.user_agent))
            if ok or address is None:
                return
            window = now - self._s.failed_login_window_seconds
            failures = await tx.uow.signals.observations(since=window, address=address,
                                                         kind="login_failed", limit=1000)
            accounts = {o.user_id for o in failures}
            if len(accounts) >= self._s.failed_login_accounts and not \
                    await self._raised(tx.uow, "d:stuffing", window, address=address):
                await tx.uow.signals.observe(RiskObservation(
                    kind="d:stuffing", at=now, tenant_id=tenant_id, user_id=None,
                    family_id=None, address=address, user_agent=None))
                self._count("failed_logins_many_accounts", "notify")
                tx.audit(events.RISK_DETECTED, detection="failed_logins_many_accounts",
                         action="notify", tenant_id=tenant_id, address=address,
                         accounts=len(accounts))

    # -- detections ------------------------------------------------------------------------

    async def _reuse(self, tx: Transaction, family: RefreshFamily, ctx: RequestContext) -> None:
        now = self._clock.now()
        address = self._address(ctx)
        await self._observe(tx.uow, "reuse", family, address, ctx.user_agent, now)
        seen = await tx.uow.signals.observations(
            since=now - self._s.reuse_window_seconds, family_id=family.family_id,
            kind="reuse", limit=1000)
        addresses = {o.address for o in seen if o.address is not None}
        if len(addresses) >= self._s.reuse_addresses:
            await self._detect(tx, "reuse_from_addresses", family, address, now,
                               {"addresses": len(addresses)})

    async def _observe(self, uow: UnitOfWork, kind: str, family: RefreshFamily,
                       address: str | None, user_agent: str | None, now: float) -> None:
        await uow.signals.observe(RiskObservation(
            kind=kind, at=now, tenant_id=family.tenant_id, user_id=family.user_id,
            family_id=family.family_id, address=address, user_agent=user_agent))

    async def _raised(self, uow: UnitOfWork, mark: str, since: float, *,
                      family_id: str | None = None, address: str | None = None) -> bool:
        return bool(await uow.signals.observations(since=since, family_id=family_id,
                                                   address=address, kind=mark, limit=1))

    def _count(self, detection: str, action: str) -> None:
        self.detected.labels(detection, action).inc()

    async def _detect(self, tx: Transaction, detection: str, family: RefreshFamily,
                      address: str | None, now: float, detail: dict[str, Any]) -> None:
        mark = _mark(detection)
        if await self._raised(tx.uow, mark, now - self._s.reuse_window_seconds,
                              family_id=family.family_id):
            return  # raised once per family and window
        action = self.action_for(family.tenant_id)
        await tx.uow.signals.observe(RiskObservation(
            kind=mark, at=now, tenant_id=family.tenant_id, user_id=family.user_id,
            family_id=family.family_id, address=address, user_agent=None))
        self._count(detection, action)
        tx.audit(events.RISK_DETECTED, detection=detection, action=action,
                 family_id=family.family_id, sid=family.sid, user_id=family.user_id,
                 tenant_id=family.tenant_id, client_id=family.client_id, address=address, **detail)
        await signal_events.risk_changed(
            tx, user_id=family.user_id, tenant_id=family.tenant_id, at=now,
            reason=detection, level="HIGH" if action == "revoke" else "MEDIUM",
            detail={"family_id": family.family_id, "action": action, **detail})
        if action == _STEP_UP:
            await tx.uow.signals.observe(RiskObservation(
                kind=_STEP_UP, at=now, tenant_id=family.tenant_id, user_id=family.user_id,
                family_id=family.family_id, address=None, user_agent=None))
        elif action == "revoke":
            await lifecycle.revoke_family(tx, family.family_id, at=now,
                                          reason=f"risk_{detection}", token_ttl=self._ttl)
