"""Fan-out: outbox rows → signed tokens waiting for delivery, exactly once per receiver.

Driven by the revocation outbox (every path that ends a session writes there in the
transaction that ends it), and by the signal outbox (credential, claims, assurance and
risk changes). One transaction reads the events after the two cursors, signs one token
per receiver and stores it (``signal_deliveries``), and moves the cursors only if no
other process moved them meanwhile: a crash before commit leaves nothing half done, a
crash after commit leaves the tokens stored, so a retry always sends the same token.

What each event becomes:
- ``family.revoked`` (``/revoke`` of a refresh token, admin revoke of a family, refresh
  reuse, and every session end, which ends its families): a logout token to that client
  (if it registered a back-channel logout URI) and ``session-revoked`` to every SSF
  stream of the tenant covering the user;
- ``session.revoked`` (RP logout, admin revoke, user disable/delete, password change,
  tenant suspend, global revocation, upstream logout): the same for every client that
  was issued tokens in the session (code redemption records it) or has a refresh family
  in it;
- signal events: ``credential-change``, ``token-claims-change``, ``assurance-level-change``,
  ``risk-level-change`` to the streams that asked for them.
One logout token per (client, sid) and one ``session-revoked`` per (stream, sid): a
session end and its families' ends are one logout.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tessera.core.clock import Clock
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.core.signals import (
    CAEP_SESSION_REVOKED,
    DELIVERY_POLL,
    Delivery,
    SignalEvent,
    Stream,
    subject_key,
)
from tessera.core.worker import BackgroundLoop
from tessera.keys import RingHolder
from tessera.protocol.oidc.backchannel import logout_token
from tessera.protocol.rfc8417 import iss_sub, security_event_token
from tessera.settings import SignalSettings
from tessera.store.ports import Store, StoreError, UnitOfWork

__all__ = ["FanOut", "SessionEnd"]

_log = logging.getLogger("tessera.signals")

REVOCATIONS = "revocations"
SIGNALS = "signals"


ENDS = frozenset({RevocationKind.FAMILY_REVOKED, RevocationKind.SESSION_REVOKED})
"""The revocation events that can become deliveries (``_session_end``); the others pass."""


class _CursorMoved(Exception):
    """Another process fanned the same events out first: roll back, read again."""


@dataclass(frozen=True, slots=True)
class SessionEnd:
    sid: str
    user_id: str
    tenant_id: str | None
    client_ids: tuple[str, ...]
    reason: str
    at: float
    seq: int


class FanOut(BackgroundLoop):
    def __init__(self, store: Store, keys: RingHolder, clock: Clock, *, issuer: str,
                 settings: SignalSettings, batch: int = 200) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock
        self._issuer = issuer
        self._settings = settings
        self._batch = batch
        self.on_enqueued: list[Any] = []
        """Callables woken after new deliveries committed (the pusher)."""
        self._passed = 0
        """Revocation events up to this seq were read and make no delivery (not stored)."""
        self._current = False
        """Every revocation event up to ``max(_stored, _passed)`` was fanned out or passed
        (False: not known, the next step reads)."""
        self._stored = 0
        """The stored revocation cursor, as last read."""
        self._handed: list[RevocationEvent] = []
        """This process's commits since the last step (``Store.hand_off_outbox``)."""
        self._look = True
        """A wake-up that needs a read: the start, another process's commit, a signal
        event, the idle interval."""
        super().__init__("signal fan-out", _log)

    def notify(self) -> None:
        self._look = True
        super().notify()

    # -- the store's hand-off (``Store.hand_off_outbox``) -----------------------------------

    def committing(self) -> float:
        return 0.0

    def committed(self, events: Sequence[RevocationEvent], before: float) -> None:
        """A commit of this process: when its events continue what was read and none can
        become a delivery (token revocations, version bumps…), they pass without a read."""
        if len(self._handed) < self._batch:
            self._handed.extend(events)
        else:
            self._look = True
        super().notify()

    def _pass_handed(self) -> bool:
        """Pass the handed events without reading, if that is certain to be right."""
        handed, self._handed = self._handed, []
        if self._look or not self._current or not handed:
            return False
        known = max(self._stored, self._passed)
        last = known + len(handed)
        if [e.seq for e in handed] != list(range(known + 1, last + 1)):
            return False  # a gap: another process's commit (or a burnt seq)
        if any(e.kind in ENDS for e in handed) or last - self._stored >= self._batch:
            return False
        self._passed = last
        return True

    async def step(self) -> bool:
        if self._pass_handed():
            return False
        self._look = False
        self._handed = []  # the read covers them
        try:
            moved = await self.fan_out_once()
        except _CursorMoved:
            return True
        except StoreError as exc:
            _log.warning("signal fan-out paused: %s", exc)
            return False
        if moved:
            for wake in self.on_enqueued:
                wake()
        return moved > 0

    def idle_interval(self) -> float:
        return self._settings.poll_interval

    async def fan_out_once(self) -> int:
        """Turn the next events into deliveries; returns how many events were read (0:
        none waiting). Raises ``_CursorMoved`` when another process won the batch."""
        self._current = False
        async with self._store.unit_of_work(read_only=True) as uow:  # idle: no write lock
            stored = await uow.signals.cursor(REVOCATIONS)
            start = max(stored, self._passed)
            pending = await uow.revocations.since(start, limit=self._batch)
            if not pending and start > stored and await uow.revocations.last_seq() < start:
                # the outbox went back (a restored database): forget what was passed
                self._passed = 0
                pending = await uow.revocations.since(stored, limit=self._batch)
            signals_waiting = bool(await uow.signals.events_since(
                await uow.signals.cursor(SIGNALS), limit=1))
        self._stored = stored
        if not signals_waiting:
            if not pending:
                self._current = True
                return 0
            last = pending[-1].seq
            assert last is not None
            if last - stored < self._batch and not any(e.kind in ENDS for e in pending):
                # Nothing to deliver (token revocations, version bumps…): no write
                # transaction per event, which would queue the next revocation behind it.
                # Remembered in memory; the stored cursor moves with the next delivery or
                # once a batch of them passed (a restart reads them again: still nothing).
                self._passed, self._current = last, True
                return 0
        async with self._store.unit_of_work() as uow:
            read = 0
            cursor = await uow.signals.cursor(REVOCATIONS)
            events = await uow.revocations.since(cursor, limit=self._batch)
            if events:
                deliveries = await self._for_revocations(uow, events)
                await uow.signals.enqueue(deliveries)
                last = events[-1].seq
                assert last is not None
                if not await uow.signals.advance(REVOCATIONS, old=cursor, new=last):
                    raise _CursorMoved
                read += len(events)
                through, current = last, len(events) < self._batch
            else:
                through, current = cursor, True
            cursor = await uow.signals.cursor(SIGNALS)
            signals = await uow.signals.events_since(cursor, limit=self._batch)
            if signals:
                await uow.signals.enqueue(await self._for_signals(uow, signals))
                last_id = signals[-1].id
                assert last_id is not None
                if not await uow.signals.advance(SIGNALS, old=cursor, new=last_id):
                    raise _CursorMoved
                read += len(signals)
        if current:  # committed: everything up to ``through`` is fanned out
            self._stored = self._passed = through
        self._current = current
        return read

    # -- revocations -------------------------------------------------------------------

    async def _session_end(self, uow: UnitOfWork, event: RevocationEvent) -> SessionEnd | None:
        assert event.seq is not None
        reason = str(event.data.get("reason", ""))
        if event.kind == RevocationKind.FAMILY_REVOKED:
            family = await uow.refresh.get_family(event.key)
            if family is None:
                return None
            return SessionEnd(family.sid, family.user_id, family.tenant_id,
                              (family.client_id,), reason, event.at, event.seq)
        if event.kind == RevocationKind.SESSION_REVOKED:
            session = await uow.sessions.get(event.key)
            if session is None:
                return None
            families = await uow.refresh.families_for_session(session.sid)
            clients = tuple(dict.fromkeys([*await uow.signals.session_clients(session.sid),
                                           *(f.client_id for f in families)]))
            return SessionEnd(session.sid, session.user_id, session.tenant_id, clients,
                              reason, event.at, event.seq)
        return None

    async def _for_revocations(self, uow: UnitOfWork,
                               events: Sequence[RevocationEvent]) -> list[Delivery]:
        out: list[Delivery] = []
        streams = [s for s in await uow.signals.streams() if s.status != "disabled"]
        for event in events:
            end = await self._session_end(uow, event)
            if end is None:
                continue
            targets = await uow.signals.logout_targets(end.client_ids)
            for client_id in end.client_ids:
                if client_id in targets:
                    out.append(self._logout(end, client_id))
            for stream in streams:
                if await self._covers(uow, stream, end.tenant_id, end.user_id,
                                      CAEP_SESSION_REVOKED):
                    out.append(self._set(
                        stream, CAEP_SESSION_REVOKED, dedupe=f"ssf:{stream.stream_id}:"
                        f"session-revoked:{end.sid}",
                        sub_id={"format": "complex",
                                "user": iss_sub(self._issuer, end.user_id),
                                "session": {"format": "opaque", "id": end.sid}},
                        payload={"event_timestamp": int(end.at),
                                 "initiating_entity": _initiator(end.reason),
                                 "reason_admin": {"en": end.reason or "session ended"}},
                        tenant_id=end.tenant_id, user_id=end.user_id, txn=str(end.seq)))
        return out

    def _logout(self, end: SessionEnd, client_id: str) -> Delivery:
        now = self._clock.now()
        jti = secrets.token_urlsafe(18)
        ttl = self._settings.logout_token_ttl
        token = logout_token(self._keys.ring, issuer=self._issuer, client_id=client_id,
                             jti=jti, iat=int(now), ttl=ttl, sub=end.user_id, sid=end.sid)
        return Delivery(dedupe=f"logout:{client_id}:{end.sid}", channel="logout",
                        target=client_id, mode="push", jti=jti, token=token,
                        event="backchannel-logout", tenant_id=end.tenant_id,
                        user_id=end.user_id, created_at=now, next_at=now,
                        expires_at=now + ttl)

    # -- SSF ---------------------------------------------------------------------------

    async def _covers(self, uow: UnitOfWork, stream: Stream, tenant_id: str | None,
                      user_id: str, event_type: str) -> bool:
        if event_type not in stream.events_delivered:
            return False
        if (stream.tenant_id or "default") != (tenant_id or "default"):
            return False
        if stream.default_subjects == "ALL":
            return True
        wanted = subject_key(iss_sub(self._issuer, user_id))
        return wanted in await uow.signals.stream_subjects(stream.stream_id)

    def _set(self, stream: Stream, event_type: str, *, dedupe: str,
             sub_id: dict[str, Any] | None, payload: dict[str, Any], tenant_id: str | None,
             user_id: str | None, txn: str | None = None) -> Delivery:
        now = self._clock.now()
        jti = secrets.token_urlsafe(18)
        token = security_event_token(self._keys.ring, issuer=self._issuer, audience=stream.aud,
                                     jti=jti, iat=int(now), event_type=event_type,
                                     payload=payload, sub_id=sub_id, txn=txn)
        return Delivery(dedupe=dedupe, channel="ssf", target=stream.stream_id,
                        mode="poll" if stream.method == DELIVERY_POLL else "push", jti=jti,
                        token=token, event=event_type.rsplit("/", 1)[-1],
                        tenant_id=tenant_id, user_id=user_id, created_at=now, next_at=now,
                        expires_at=now + self._settings.set_ttl)

    def stream_event(self, stream: Stream, event_type: str, payload: dict[str, Any], *,
                     sub_id: dict[str, Any] | None = None) -> Delivery:
        """An event about the stream itself (verification, stream-updated)."""
        return self._set(stream, event_type,
                         dedupe=f"ssf:{stream.stream_id}:{secrets.token_hex(8)}",
                         sub_id=sub_id or {"format": "opaque", "id": stream.stream_id},
                         payload=payload, tenant_id=stream.tenant_id, user_id=None)

    async def _for_signals(self, uow: UnitOfWork,
                           events: Sequence[SignalEvent]) -> list[Delivery]:
        out: list[Delivery] = []
        streams = [s for s in await uow.signals.streams() if s.status != "disabled"]
        for event in events:
            for stream in streams:
                if await self._covers(uow, stream, event.tenant_id, event.user_id, event.kind):
                    out.append(self._set(
                        stream, event.kind, dedupe=f"ssf:{stream.stream_id}:sig:{event.id}",
                        sub_id=iss_sub(self._issuer, event.user_id),
                        payload={"event_timestamp": int(event.at), **event.data},
                        tenant_id=event.tenant_id, user_id=event.user_id,
                        txn=f"signal-{event.id}"))
        return out


def _initiator(reason: str) -> str:
    """CAEP ``initiating_entity`` from the revocation reason."""
    if reason in ("logout", "rp_logout", "user_logout", "password_changed"):
        return "user"
    if reason in ("refresh_reuse", "code_reuse", "risk") or reason.startswith("risk"):
        return "system"
    return "admin" if reason else "system"
