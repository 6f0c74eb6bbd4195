"""Bounds on the identity service's own login sessions (docs/sessions.md), enforced at
every use of the session cookie and at every new session:

- **idle and absolute timeouts**: a session past either ends when its cookie is next
  presented (``/authorize`` with or without ``prompt=none``, ``/account/*``, the console,
  the consent step): it is revoked through the outbox like any revocation (reason
  ``idle_timeout`` / ``absolute_timeout``), so its tokens die too, and the browser is
  treated as signed out. Within the bounds, ``last_seen_at`` is refreshed at most every
  ``sessions.touch_interval`` seconds (a quarter of the idle timeout when that is
  shorter, so a session in use never looks idle).
- **concurrent sessions per user**: at ``max_sessions`` a new session is refused
  (``SessionLimitReached``, a ``LoginFailed``: the login page says why) or the oldest
  session(s) are revoked in the same transaction that opens the new one (``end_oldest``,
  reason ``session_limit``).

The policy is the tenant's (``tessera tenants set-session-policy``) over the global
defaults (``settings.sessions``).
"""

from __future__ import annotations

from tessera.application import lifecycle
from tessera.application.transaction import Transaction, transaction
from tessera.core.clock import Clock
from tessera.core.session_bounds import (
    END_OLDEST,
    SESSION_LIMIT,
    SessionPolicy,
    ended_by_timeout,
    over_limit,
)
from tessera.core.sessions import Session
from tessera.identity.login.failures import LoginFailed
from tessera.observability.audit import AuditLog
from tessera.settings import SessionBoundSettings
from tessera.store.ports import Store, UnitOfWork

__all__ = ["SessionBounds", "SessionLimitReached", "defaults_of"]


class SessionLimitReached(LoginFailed):
    """The user holds ``max_sessions`` sessions and the tenant's policy is ``refuse``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"You are signed in on {limit} devices or browsers already, the "
                         "most allowed. Sign out on one of them (Your account → Your "
                         "sessions), then try again.")
        self.limit = limit


def defaults_of(settings: SessionBoundSettings) -> SessionPolicy:
    """The global defaults as a policy (0: no bound)."""
    return SessionPolicy(tenant_id="*", idle_timeout=float(settings.idle_timeout),
                         absolute_timeout=float(settings.absolute_timeout),
                         max_sessions=settings.max_sessions, on_limit=settings.on_limit)


class SessionBounds:
    def __init__(self, store: Store, audit: AuditLog, clock: Clock, *,
                 defaults: SessionPolicy, token_ttl: float, touch_interval: float) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self.defaults = defaults
        self._token_ttl = token_ttl
        self._touch_interval = touch_interval

    async def policy_in(self, uow: UnitOfWork, tenant_id: str) -> SessionPolicy:
        """The effective policy of ``tenant_id``: its own fields over the defaults."""
        own = await uow.session_policies.get(tenant_id)
        return (own or SessionPolicy(tenant_id=tenant_id)).over(self.defaults)

    async def policy(self, tenant_id: str) -> SessionPolicy:
        async with self._store.unit_of_work(read_only=True) as uow:
            return await self.policy_in(uow, tenant_id)

    async def check_use(self, session: Session, policy: SessionPolicy) -> Session | None:
        """At a use of the session's cookie: None (and the session revoked) if a timeout
        ended it, else the session, its ``last_seen_at`` refreshed when due."""
        now = self._clock.now()
        reason = ended_by_timeout(session, policy, now)
        if reason is not None:
            async with transaction(self._store, self._audit) as tx:
                await lifecycle.revoke_session(tx, session.sid, at=now, reason=reason,
                                               token_ttl=self._token_ttl, actor="system")
            return None
        # a short idle timeout needs a finer record than the touch interval
        every = min(self._touch_interval, (policy.idle_timeout or float("inf")) / 4)
        if now - session.last_seen_at >= every:
            async with self._store.unit_of_work() as uow:
                await uow.sessions.touch(session.sid, now)
        return session

    async def make_room(self, tx: Transaction, user_id: str, tenant_id: str) -> None:
        """Before a new session of the user opens in ``tx``: refuse it, or end the oldest
        sessions so it fits (``max_sessions``). Expired sessions never count."""
        policy = await self.policy_in(tx.uow, tenant_id)
        if not policy.max_sessions:
            return
        await tx.uow.sessions.hold_user(user_id)  # concurrent sign-ins count one by one
        now = self._clock.now()
        active = []
        for session in await tx.uow.sessions.active_for_user(user_id):
            reason = ended_by_timeout(session, policy, now)
            if reason is None:
                active.append(session)
            else:  # over already, it just was not used since: end it for what it is
                await lifecycle.revoke_session(tx, session.sid, at=now, reason=reason,
                                               token_ttl=self._token_ttl, actor="system")
        excess = over_limit(active, policy)
        if not excess:
            return
        if policy.on_limit != END_OLDEST:
            raise SessionLimitReached(policy.max_sessions)
        for session in excess:
            await lifecycle.revoke_session(tx, session.sid, at=now, reason=SESSION_LIMIT,
                                           token_ttl=self._token_ttl, actor="system")
