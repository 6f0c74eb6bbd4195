"""TOTP second factor (RFC 6238, pyotp): enrolment, verification, replay protection.

- The secret is 160 random bits (RFC 4226 §4 R6), base32, sealed at rest with AES-256-GCM
  (``keys.Sealer``) under a key derived from the KEK for this purpose only, with the user
  id as associated data: a sealed row moved onto another user does not open.
- A code is checked against the current 30-second step and one step either side
  (pyotp's ``valid_window=1``), in constant time. It is accepted only if its step is later
  than the last accepted one (RFC 6238 §5.2), written with one conditional update, so a
  code, even submitted twice at once, signs in once.
- Code attempts count per user (from any address) in a throttle shared by every worker
  (``identity/throttles.py``), before the code is checked so parallel guesses cannot
  overshoot; a right code clears the count. Past the limit every code is refused (429)
  until the window slides.
- A one-time recovery code (``recovery``) is accepted in place of a TOTP code.
- Enrolment is two steps: ``begin_enrolment`` stores a pending secret (shown to the user
  once per pending secret's life), ``confirm_enrolment`` turns it on when a current code
  for it is presented. ``provision`` (administrators, the CLI) turns a new secret on at once.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final, NoReturn

import pyotp

from tessera.application import signal_events
from tessera.application.transaction import transaction
from tessera.core.clock import Clock
from tessera.core.users import TOTP, User
from tessera.identity.login.failures import LoginFailed
from tessera.identity.login.recovery import RecoveryCodes
from tessera.keys import Sealer
from tessera.observability import events
from tessera.observability.audit import AuditLog
from tessera.protocol.throttle import Throttle
from tessera.store.ports import SealedFactor, Store

__all__ = ["TOTP", "Enrolment", "TotpService"]

_DIGITS: Final = 6
_INTERVAL: Final = 30
_VALID_WINDOW: Final = 1
_PENDING_TTL: Final = 3600.0
"""A pending (unconfirmed) secret older than this is replaced by a fresh one."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What an authenticator app needs: the base32 secret and the ``otpauth://`` URI."""

    secret: str
    uri: str


class TotpService:
    def __init__(self, store: Store, sealer: Sealer, audit: AuditLog, clock: Clock, *,
                 issuer_name: str, throttle: Throttle,
                 recovery: RecoveryCodes | None = None) -> None:
        self.recovery = recovery
        """One-time recovery codes ``verify`` also accepts in place of a TOTP code."""
        self._store = store
        self._sealer = sealer
        self._audit = audit
        self._clock = clock
        self._issuer_name = issuer_name
        self._throttle = throttle

    # enrolment ----------------------------------------------------------------------------
    async def enrolled(self, user_id: str) -> bool:
        async with self._store.unit_of_work(read_only=True) as uow:
            factor = await uow.factors.get(user_id, TOTP)
        return factor is not None and factor.confirmed_at is not None

    async def begin_enrolment(self, user: User) -> Enrolment | None:
        """The pending secret to show (a fresh one if none or stale); ``None`` if the user
        already has a confirmed factor."""
        now = self._clock.now()
        async with self._store.unit_of_work(read_only=True) as uow:
            factor = await uow.factors.get(user.user_id, TOTP)
        if factor is not None and factor.confirmed_at is not None:
            return None
        if factor is not None and now - factor.created_at < _PENDING_TTL:
            return self._enrolment(user, self._open(factor))
        secret = pyotp.random_base32()
        async with self._store.unit_of_work() as uow:
            stored = await uow.factors.put_pending(self._sealed(user, secret, now))
        return self._enrolment(user, secret) if stored else None

    async def confirm_enrolment(self, user: User, code: str) -> None:
        """Turn the pending factor on; ``LoginFailed`` for a wrong code, none pending, or
        too many failures."""
        await self._check_throttle(user)
        async with self._store.unit_of_work(read_only=True) as uow:
            factor = await uow.factors.get(user.user_id, TOTP)
        if factor is None or factor.confirmed_at is not None:
            raise LoginFailed("There is no enrolment waiting for a code.")
        step = self._matching_step(self._open(factor), code)
        if step is None:
            await self._fail(user, "bad_code")
        async with transaction(self._store, self._audit) as tx:
            if not await tx.uow.factors.confirm(
                    user.user_id, TOTP, step=step, at=self._clock.now()):
                raise LoginFailed("There is no enrolment waiting for a code.")
            tx.audit(events.FACTOR_ENROLLED, user_id=user.user_id, tenant_id=user.tenant_id,
                     kind=TOTP, by="user")
            await signal_events.credential_changed(
                tx, user_id=user.user_id, tenant_id=user.tenant_id, at=self._clock.now(),
                credential_type="app", change_type="create")
        await self._throttle.clear(user.user_id)

    async def provision(self, user: User, *, actor: str) -> Enrolment:
        """Give ``user`` a new, confirmed TOTP secret (replacing any): administrators."""
        secret = pyotp.random_base32()
        now = self._clock.now()
        async with transaction(self._store, self._audit) as tx:
            await tx.uow.factors.replace(self._sealed(user, secret, now, confirmed=True))
            tx.audit(events.FACTOR_ENROLLED, user_id=user.user_id, tenant_id=user.tenant_id,
                     kind=TOTP, by=actor)
            await signal_events.credential_changed(
                tx, user_id=user.user_id, tenant_id=user.tenant_id, at=now,
                credential_type="app", change_type="create", initiator="admin")
        return self._enrolment(user, secret)

    # verification -------------------------------------------------------------------------
    async def verify(self, user: User, code: str) -> None:
        """Accept a current, unused code of the user's confirmed factor, or raise
        ``LoginFailed`` (``throttled`` past the failure limit)."""
        await self._check_throttle(user)
        async with self._store.unit_of_work(read_only=True) as uow:
            factor = await uow.factors.get(user.user_id, TOTP)
        if factor is None or factor.confirmed_at is None:
            raise LoginFailed("Two-step verification is not set up for this account.")
        if self.recovery is not None and self.recovery.looks_like(code):
            if not await self.recovery.use(user, code):
                await self._fail(user, "bad_recovery_code",
                                 "That recovery code is not valid (or was used already).")
            await self._audit.record(events.RECOVERY_CODE_USED, user_id=user.user_id,
                                     tenant_id=user.tenant_id)
            await self._throttle.clear(user.user_id)
            return
        step = self._matching_step(self._open(factor), code)
        if step is None:
            await self._fail(user, "bad_code")
        async with self._store.unit_of_work() as uow:
            fresh = await uow.factors.use_step(user.user_id, TOTP, step)
        if not fresh:
            await self._fail(user, "replayed_code",
                             "This code was used already. Wait for the next one.")
        await self._throttle.clear(user.user_id)

    def _matching_step(self, secret: str, code: str) -> int | None:
        """The time step ``code`` belongs to, within ``valid_window`` steps of now."""
        code = code.replace(" ", "")
        if len(code) != _DIGITS or not (code.isascii() and code.isdigit()):
            return None
        totp = pyotp.TOTP(secret, digits=_DIGITS, interval=_INTERVAL)
        current = int(self._clock.now()) // _INTERVAL
        found = None
        for step in range(current - _VALID_WINDOW, current + _VALID_WINDOW + 1):
            if hmac.compare_digest(totp.generate_otp(step), code):  # no early exit
                found = step
        return found

    async def _check_throttle(self, user: User) -> None:
        """Count this attempt (before the code is checked), or refuse past the limit."""
        if not await self._throttle.hit(user.user_id):
            raise LoginFailed("Too many wrong codes. Wait a minute and try again.",
                              throttled=True)

    async def _fail(self, user: User, reason: str,
                    message: str = "That code is not right. Try the current one.") -> NoReturn:
        await self._audit.record(events.LOGIN_FAILED, user_id=user.user_id,
                                 tenant_id=user.tenant_id, factor=TOTP, reason=reason)
        raise LoginFailed(message)

    # sealing ------------------------------------------------------------------------------
    def _sealed(self, user: User, secret: str, now: float, *,
                confirmed: bool = False) -> SealedFactor:
        return SealedFactor(
            user_id=user.user_id, kind=TOTP, created_at=now,
            sealed_secret=self._sealer.seal(secret.encode("ascii"),
                                            context=f"{TOTP}:{user.user_id}"),
            confirmed_at=now if confirmed else None)

    def _open(self, factor: SealedFactor) -> str:
        return self._sealer.open(factor.sealed_secret,
                                 context=f"{TOTP}:{factor.user_id}").decode("ascii")

    def _enrolment(self, user: User, secret: str) -> Enrolment:
        uri = pyotp.TOTP(secret, digits=_DIGITS, interval=_INTERVAL).provisioning_uri(
            name=user.username, issuer_name=self._issuer_name)
        return Enrolment(secret=secret, uri=uri)
