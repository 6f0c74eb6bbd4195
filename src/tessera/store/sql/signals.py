"""Outbound signals in SQL: logout registrations, SSF streams, the signal outbox,
fan-out cursors, durable deliveries and risk observations (``ports.SignalRepo``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from tessera.core.signals import Delivery, LogoutTarget, RiskObservation, SignalEvent, Stream
from tessera.store.sql.repos_base import Repo
from tessera.store.sql.schema import (
    client_logout,
    risk_observations,
    sessions,
    signal_cursors,
    signal_deliveries,
    signal_events,
    signal_session_clients,
    ssf_streams,
    ssf_subjects,
)

__all__ = ["SqlSignalRepo"]

# The fan-out's and the pusher's reads, on every wake-up: built once (a statement built
# per call costs as much CPU again as executing it).
_EVENTS_SINCE = (select(signal_events).where(signal_events.c.id > bindparam("after"))
                 .order_by(signal_events.c.id).limit(bindparam("limit")))
_CURSOR = select(signal_cursors.c.seq).where(signal_cursors.c.name == bindparam("name"))
_DUE = and_(signal_deliveries.c.status == "pending", signal_deliveries.c.mode == "push",
            signal_deliveries.c.next_at <= bindparam("now"),
            or_(signal_deliveries.c.lease_until.is_(None),
                signal_deliveries.c.lease_until < bindparam("now")))
_HAS_DUE = select(signal_deliveries.c.id).where(_DUE).limit(1)
_OBSERVE = insert(risk_observations)  # every refresh rotation


def _stream(row: RowMapping) -> Stream:
    return Stream(stream_id=row["stream_id"], client_id=row["client_id"],
                  tenant_id=row["tenant_id"], aud=row["aud"], method=row["method"],
                  endpoint_url=row["endpoint_url"],
                  events_requested=tuple(row["events_requested"]),
                  description=row["description"], status=row["status"],
                  status_reason=row["status_reason"],
                  default_subjects=row["default_subjects"],
                  sealed_authorization=row["sealed_authorization"],
                  created_at=row["created_at"], updated_at=row["updated_at"])


def _stream_values(stream: Stream) -> dict[str, Any]:
    return {"stream_id": stream.stream_id, "client_id": stream.client_id,
            "tenant_id": stream.tenant_id, "aud": stream.aud, "method": stream.method,
            "endpoint_url": stream.endpoint_url,
            "events_requested": list(stream.events_requested),
            "description": stream.description, "status": stream.status,
            "status_reason": stream.status_reason,
            "default_subjects": stream.default_subjects,
            "sealed_authorization": stream.sealed_authorization,
            "created_at": stream.created_at, "updated_at": stream.updated_at}


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(id=int(row["id"]), dedupe=row["dedupe"], channel=row["channel"],
                    target=row["target"], mode=row["mode"], jti=row["jti"],
                    token=row["token"], event=row["event"], tenant_id=row["tenant_id"],
                    user_id=row["subject"], created_at=row["created_at"],
                    next_at=row["next_at"], expires_at=row["expires_at"],
                    status=row["status"], attempts=int(row["attempts"]),
                    delivered_at=row["delivered_at"], last_error=row["last_error"])


def _observation(row: RowMapping) -> RiskObservation:
    return RiskObservation(kind=row["kind"], at=row["at"], tenant_id=row["tenant_id"],
                           user_id=row["user_id"], family_id=row["family_id"],
                           address=row["address"], user_agent=row["user_agent"])


class SqlSignalRepo(Repo):
    def _dialect(self) -> Any:
        return postgresql if self.conn.dialect.name == "postgresql" else sqlite

    async def set_logout(self, client_id: str, target: LogoutTarget | None) -> None:
        await self.conn.execute(delete(client_logout).where(
            client_logout.c.client_id == client_id))
        if target is not None:
            await self.conn.execute(insert(client_logout).values(
                client_id=client_id, uri=target.uri, session_required=target.session_required))

    async def logout_targets(self, client_ids: Sequence[str]) -> dict[str, LogoutTarget]:
        if not client_ids:
            return {}
        rows = await self.conn.execute(select(client_logout).where(
            client_logout.c.client_id.in_(list(client_ids))))
        return {r["client_id"]: LogoutTarget(r["client_id"], r["uri"],
                                             bool(r["session_required"]))
                for r in rows.mappings()}

    async def join_session(self, sid: str, client_id: str, *, at: float) -> None:
        stmt = self._dialect().insert(signal_session_clients).values(
            sid=sid, client_id=client_id, at=at)
        await self.conn.execute(stmt.on_conflict_do_nothing())

    async def session_clients(self, sid: str) -> list[str]:
        rows = await self.conn.execute(
            select(signal_session_clients.c.client_id)
            .where(signal_session_clients.c.sid == sid).order_by(signal_session_clients.c.at))
        return [r[0] for r in rows]

    async def add_stream(self, stream: Stream) -> None:
        await self.conn.execute(insert(ssf_streams).values(**_stream_values(stream)))

    async def get_stream(self, stream_id: str) -> Stream | None:
        row = await self._one(select(ssf_streams).where(ssf_streams.c.stream_id == stream_id))
        return _stream(row) if row is not None else None

    async def streams(self, *, client_id: str | None = None) -> list[Stream]:
        query = select(ssf_streams).order_by(ssf_streams.c.created_at, ssf_streams.c.stream_id)
        if client_id is not None:
            query = query.where(ssf_streams.c.client_id == client_id)
        return [_stream(r) for r in (await self.conn.execute(query)).mappings()]

    async def replace_stream(self, stream: Stream) -> bool:
        values = _stream_values(stream)
        del values["stream_id"]
        result = await self.conn.execute(update(ssf_streams).where(
            ssf_streams.c.stream_id == stream.stream_id).values(**values))
        return bool(result.rowcount)

    async def delete_stream(self, stream_id: str) -> bool:
        await self.conn.execute(delete(ssf_subjects).where(
            ssf_subjects.c.stream_id == stream_id))
        await self.conn.execute(delete(signal_deliveries).where(
            signal_deliveries.c.channel == "ssf", signal_deliveries.c.target == stream_id,
            signal_deliveries.c.status == "pending"))
        result = await self.conn.execute(delete(ssf_streams).where(
            ssf_streams.c.stream_id == stream_id))
        return bool(result.rowcount)

    async def add_subject(self, stream_id: str, key: str, subject: dict[str, Any]) -> None:
        stmt = self._dialect().insert(ssf_subjects).values(
            stream_id=stream_id, subject_key=key, subject=subject)
        await self.conn.execute(stmt.on_conflict_do_nothing())

    async def remove_subject(self, stream_id: str, key: str) -> bool:
        result = await self.conn.execute(delete(ssf_subjects).where(
            ssf_subjects.c.stream_id == stream_id, ssf_subjects.c.subject_key == key))
        return bool(result.rowcount)

    async def stream_subjects(self, stream_id: str) -> set[str]:
        rows = await self.conn.execute(select(ssf_subjects.c.subject_key).where(
            ssf_subjects.c.stream_id == stream_id))
        return {r[0] for r in rows}

    async def record(self, event: SignalEvent) -> None:
        await self.conn.execute(insert(signal_events).values(
            kind=event.kind, tenant_id=event.tenant_id, user_id=event.user_id, at=event.at,
            data=event.data))

    async def events_since(self, after: int, *, limit: int) -> list[SignalEvent]:
        rows = await self.conn.execute(_EVENTS_SINCE, {"after": after, "limit": limit})
        return [SignalEvent(kind=r["kind"], tenant_id=r["tenant_id"], user_id=r["user_id"],
                            at=r["at"], data=dict(r["data"]), id=int(r["id"]))
                for r in rows.mappings()]

    async def cursor(self, name: str) -> int:
        row = await self._one(_CURSOR, {"name": name})
        return int(row["seq"]) if row is not None else 0

    async def advance(self, name: str, *, old: int, new: int) -> bool:
        if old == 0:
            stmt = self._dialect().insert(signal_cursors).values(name=name, seq=new)
            if (await self.conn.execute(stmt.on_conflict_do_nothing())).rowcount:
                return True
        result = await self.conn.execute(update(signal_cursors).where(
            signal_cursors.c.name == name, signal_cursors.c.seq == old).values(seq=new))
        return bool(result.rowcount)

    async def enqueue(self, deliveries: Sequence[Delivery]) -> int:
        added = 0
        for d in deliveries:
            stmt = self._dialect().insert(signal_deliveries).values(
                dedupe=d.dedupe, channel=d.channel, target=d.target, mode=d.mode, jti=d.jti,
                token=d.token, event=d.event, tenant_id=d.tenant_id, subject=d.user_id,
                status=d.status, attempts=d.attempts, created_at=d.created_at,
                next_at=d.next_at, expires_at=d.expires_at)
            added += (await self.conn.execute(
                stmt.on_conflict_do_nothing(index_elements=["dedupe"]))).rowcount or 0
        return added

    async def has_due(self, *, now: float) -> bool:
        return await self._one(_HAS_DUE, {"now": now}) is not None

    async def claim(self, *, now: float, lease: float, limit: int) -> list[Delivery]:
        rows = (await self.conn.execute(select(signal_deliveries.c.id).where(_DUE)
                                        .order_by(signal_deliveries.c.next_at,
                                                  signal_deliveries.c.id)
                                        .limit(limit), {"now": now})).all()
        claimed: list[Delivery] = []
        for (delivery_id,) in rows:
            result = await self.conn.execute(
                update(signal_deliveries).where(signal_deliveries.c.id == delivery_id, _DUE)
                .values(lease_until=now + lease, attempts=signal_deliveries.c.attempts + 1),
                {"now": now})
            if result.rowcount:
                row = await self._one(select(signal_deliveries).where(
                    signal_deliveries.c.id == delivery_id))
                assert row is not None
                claimed.append(_delivery(row))
        return claimed

    async def settle(self, delivery_id: int, *, status: str, at: float,
                     next_at: float | None = None, error: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "lease_until": None,
                                  "last_error": error[:500] if error else None}
        if status == "delivered":
            values["delivered_at"] = at
        if next_at is not None:
            values["next_at"] = next_at
        await self.conn.execute(update(signal_deliveries).where(
            signal_deliveries.c.id == delivery_id).values(**values))

    async def pending_for(self, target: str, *, limit: int) -> list[Delivery]:
        rows = await self.conn.execute(select(signal_deliveries).where(
            signal_deliveries.c.target == target, signal_deliveries.c.status == "pending",
            signal_deliveries.c.mode == "poll").order_by(signal_deliveries.c.id).limit(limit))
        return [_delivery(r) for r in rows.mappings()]

    async def acknowledge(self, target: str, jtis: Sequence[str], *, at: float,
                          error: str | None = None) -> int:
        if not jtis:
            return 0
        values: dict[str, Any] = ({"status": "delivered", "delivered_at": at} if error is None
                                  else {"status": "dead", "last_error": error[:500]})
        result = await self.conn.execute(update(signal_deliveries).where(
            signal_deliveries.c.target == target, signal_deliveries.c.jti.in_(list(jtis)),
            signal_deliveries.c.status == "pending").values(**values))
        return int(result.rowcount or 0)

    async def deliveries(self, *, status: str | None = None, channel: str | None = None,
                         tenant_id: str | None = None, limit: int = 100) -> list[Delivery]:
        query = select(signal_deliveries).order_by(signal_deliveries.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(signal_deliveries.c.status == status)
        if channel is not None:
            query = query.where(signal_deliveries.c.channel == channel)
        if tenant_id is not None:
            query = query.where(signal_deliveries.c.tenant_id == tenant_id)
        return [_delivery(r) for r in (await self.conn.execute(query)).mappings()]

    async def requeue(self, delivery_id: int, *, at: float) -> bool:
        result = await self.conn.execute(update(signal_deliveries).where(
            signal_deliveries.c.id == delivery_id, signal_deliveries.c.status == "dead")
            .values(status="pending", next_at=at, lease_until=None, attempts=0))
        return bool(result.rowcount)

    async def observe(self, observation: RiskObservation) -> None:
        o = observation
        await self.conn.execute(_OBSERVE, {
            "kind": o.kind, "at": o.at, "tenant_id": o.tenant_id, "user_id": o.user_id,
            "family_id": o.family_id, "address": o.address,
            "user_agent": o.user_agent[:300] if o.user_agent else None})

    async def observations(self, *, since: float, family_id: str | None = None,
                           address: str | None = None, kind: str | None = None,
                           limit: int = 1000) -> list[RiskObservation]:
        query = (select(risk_observations).where(risk_observations.c.at >= since)
                 .order_by(risk_observations.c.id.desc()).limit(limit))
        if family_id is not None:
            query = query.where(risk_observations.c.family_id == family_id)
        if address is not None:
            query = query.where(risk_observations.c.address == address)
        if kind is not None:
            query = query.where(risk_observations.c.kind == kind)
        return [_observation(r) for r in (await self.conn.execute(query)).mappings()]

    async def prune(self, before: float) -> int:
        done = signal_deliveries.c.status.in_(("delivered", "dead"))
        n = (await self.conn.execute(delete(signal_deliveries).where(
            done, signal_deliveries.c.created_at < before))).rowcount or 0
        processed = await self.cursor("signals")
        n += (await self.conn.execute(delete(signal_events).where(
            signal_events.c.at < before, signal_events.c.id <= processed))).rowcount or 0
        n += (await self.conn.execute(delete(risk_observations).where(
            risk_observations.c.at < before))).rowcount or 0
        ended = select(sessions.c.sid).where(sessions.c.revoked_at < before)
        n += (await self.conn.execute(delete(signal_session_clients).where(
            signal_session_clients.c.sid.in_(ended)))).rowcount or 0
        return int(n)
