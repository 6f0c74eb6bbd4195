"""Login: authenticate a user, open a session (or re-authenticate in one), find a session
by its browser cookie."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tessera.application import signal_events
from tessera.application.transaction import transaction
from tessera.core.acr import ACR_PASSWORD, AMR_PASSWORD
from tessera.core.clock import Clock
from tessera.core.federation import UpstreamSession
from tessera.core.secrets import new_id, new_secret, token_hash
from tessera.core.sessions import Session
from tessera.core.users import User
from tessera.identity.login.bounds import SessionBounds
from tessera.identity.login.failures import LoginFailed
from tessera.identity.login.passwords import PasswordHasher
from tessera.observability import events
from tessera.observability.audit import AuditLog
from tessera.protocol.risk import RequestContext, RiskObserver
from tessera.protocol.throttle import Throttle
from tessera.store.ports import Store, UnitOfWork

__all__ = ["ACR_PASSWORD", "LoginFailed", "LoginService"]
_MAX_USER_AGENT = 300
_MAX_ADDRESS = 64


class _NotCommitted(Exception):
    """``commit_if`` said no: roll the new session back."""


class LoginService:
    """Password login, throttled per account (attempts, counted before the check) and per
    client address (failures): ``identity/throttles.py``. Whether the account exists
    changes neither the answer nor the work done (an unknown user's password is checked
    against a dummy hash; both throttles count the same way for it)."""

    def __init__(self, store: Store, hasher: PasswordHasher, audit: AuditLog, clock: Clock,
                 *, by_account: Throttle, by_address: Throttle,
                 bounds: SessionBounds | None = None,
                 risk: RiskObserver | None = None) -> None:
        self.risk = risk
        """Risk signals (``protocol.risk``): every password attempt's address and agent."""
        self._store = store
        self._hasher = hasher
        self._audit = audit
        self._clock = clock
        self._by_account = by_account
        self._by_address = by_address
        self.bounds = bounds
        """Idle/absolute timeouts and the per-user session limit (``login.bounds``)."""

    async def authenticate(self, tenant_id: str, username: str, password: str,
                           *, client_host: str | None, user_agent: str | None = None) -> User:
        account = f"{tenant_id}\x00{username}"
        address = client_host or "unknown"
        if await self._by_address.blocked(address) or not await self._by_account.hit(account):
            await self._audit.record(events.LOGIN_FAILED, tenant_id=tenant_id,
                                     username_hash=token_hash(username), reason="throttled")
            raise LoginFailed("Too many attempts. Wait a minute and try again.", throttled=True)
        async with self._store.unit_of_work(read_only=True) as uow:
            user = await uow.users.by_username(tenant_id, username)
            tenant = await uow.tenants.get(tenant_id)
        ok = await self._hasher.averify(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled or (tenant is not None and not tenant.active):
            await self._by_address.hit(address)
            await self._audit.record(events.LOGIN_FAILED, tenant_id=tenant_id,
                                     username_hash=token_hash(username),
                                     reason="bad_credentials")
            if self.risk is not None:
                await self.risk.login(tenant_id=tenant_id, user_id=None,
                                      account_hash=token_hash(username), ok=False,
                                      ctx=RequestContext(client_host, user_agent))
            raise LoginFailed("Wrong username or password.")
        await self._by_account.clear(account)
        if self.risk is not None:
            await self.risk.login(tenant_id=tenant_id, user_id=user.user_id,
                                  account_hash=token_hash(username), ok=True,
                                  ctx=RequestContext(client_host, user_agent))
        return user

    async def user(self, user_id: str) -> User | None:
        """An enabled user by id (the second login step knows only the id)."""
        async with self._store.unit_of_work(read_only=True) as uow:
            user = await uow.users.get(user_id)
        return user if user is not None and not user.disabled else None

    async def open_session(self, user: User, *, user_agent: str | None,
                           acr: str = ACR_PASSWORD, amr: tuple[str, ...] = (AMR_PASSWORD,),
                           client_address: str | None = None,
                           upstream: UpstreamSession | None = None) -> tuple[Session, str]:
        """A new browser session for ``user``; returns it and the raw browser cookie
        value. Raises ``SessionLimitReached`` (a ``LoginFailed``) when the user is at the
        session limit and the tenant refuses new sessions then. An upstream login records
        the upstream session in the same transaction (its back-channel logout names it),
        with the placeholder ``sid`` replaced."""
        handle = new_secret()
        session = await self._open(user, user_agent=user_agent, acr=acr, amr=amr,
                                   auth_time=self._clock.now(), client_address=client_address,
                                   handle_hash=token_hash(handle), upstream=upstream)
        return session, handle

    async def open_device_session(self, user: User, *, client_id: str, device_name: str,
                                  acr: str, amr: tuple[str, ...], auth_time: float,
                                  client_address: str | None,
                                  commit_if: Callable[[UnitOfWork, Session], Awaitable[bool]]
                                  ) -> Session | None:
        """A session for a device the user approved (RFC 8628): no browser cookie; it is
        listed, bounded and revoked like any other session. ``commit_if`` runs in the same
        transaction (recording the approval); if it returns False nothing is written and
        the result is None."""
        try:
            return await self._open(user, user_agent=device_name, acr=acr, amr=amr,
                                    auth_time=auth_time, client_address=client_address,
                                    handle_hash=None, device_client_id=client_id,
                                    commit_if=commit_if)
        except _NotCommitted:
            return None

    async def _open(self, user: User, *, user_agent: str | None, acr: str,
                    amr: tuple[str, ...], auth_time: float, client_address: str | None,
                    handle_hash: str | None, device_client_id: str | None = None,
                    commit_if: Callable[[UnitOfWork, Session], Awaitable[bool]] | None = None,
                    upstream: UpstreamSession | None = None) -> Session:
        now = self._clock.now()
        session = Session(
            sid=new_id(), user_id=user.user_id, tenant_id=user.tenant_id,
            sv=1, acr=acr, amr=amr, auth_time=auth_time, created_at=now,
            last_seen_at=now, user_agent=(user_agent or "")[:_MAX_USER_AGENT] or None,
            client_address=(client_address or "")[:_MAX_ADDRESS] or None,
            device_client_id=device_client_id,
        )
        async with transaction(self._store, self._audit) as tx:
            if self.bounds is not None:
                await self.bounds.make_room(tx, user.user_id, user.tenant_id)
            await tx.uow.sessions.add(session, browser_handle_hash=handle_hash)
            if commit_if is not None and not await commit_if(tx.uow, session):
                raise _NotCommitted
            if upstream is not None:
                await tx.uow.federation.add_upstream_session(UpstreamSession(
                    sid=session.sid, idp_id=upstream.idp_id, subject=upstream.subject,
                    upstream_sid=upstream.upstream_sid))
            tx.audit(events.SESSION_CREATED, sid=session.sid, user_id=user.user_id,
                     tenant_id=user.tenant_id, acr=session.acr, amr=list(session.amr),
                     client_id=device_client_id)
        return session

    async def reauthenticate(self, session: Session, *, acr: str, amr: tuple[str, ...],
                             upstream: UpstreamSession | None = None
                             ) -> tuple[Session, str] | None:
        """Record a fresh authentication of the session's user in the same session (step-up,
        ``prompt=login``, ``max_age``): same ``sid`` and ``sv``, refresh families untouched;
        new ``acr``/``amr``/``auth_time`` and a new browser cookie value (the session's
        privilege changed, so the old cookie stops working). None if it ended meanwhile."""
        handle = new_secret()
        async with transaction(self._store, self._audit) as tx:
            updated = await tx.uow.sessions.step_up(
                session.sid, acr=acr, amr=amr, auth_time=self._clock.now(),
                browser_handle_hash=token_hash(handle))
            if updated is None:
                return None
            if upstream is not None:
                await tx.uow.federation.add_upstream_session(UpstreamSession(
                    sid=session.sid, idp_id=upstream.idp_id, subject=upstream.subject,
                    upstream_sid=upstream.upstream_sid))
            tx.audit(events.SESSION_REAUTHENTICATED, sid=session.sid,
                     user_id=session.user_id, tenant_id=session.tenant_id, acr=acr,
                     amr=list(amr), previous_acr=session.acr)
            if acr != session.acr:
                await signal_events.assurance_changed(
                    tx, user_id=session.user_id, tenant_id=session.tenant_id,
                    at=self._clock.now(), previous=session.acr, current=acr, sid=session.sid)
        return updated, handle

    async def session_for_cookie(self, handle: str | None) -> Session | None:
        """The active session the browser's cookie names, None if none — or if the
        session's idle or absolute timeout has passed (it is revoked then)."""
        if not handle or len(handle) > 128:
            return None
        async with self._store.unit_of_work(read_only=True) as uow:
            session = await uow.sessions.by_browser_handle(token_hash(handle))
            if session is None or not session.active:
                return None
            if self.bounds is None:
                return session
            policy = await self.bounds.policy_in(uow, session.tenant_id)
        return await self.bounds.check_use(session, policy)
