"""A journey: every audit event of one token or one request, across services, in order.

The needle is a correlation id, a token hash, a ``jti``, a ``sid`` or a family id. The
journey starts with the events naming it and follows the identifiers of the same token
or request that those events carry (``jti``, token hashes, the exchanged token's hash,
the correlation id) for a few rounds: a token hash finds the verifier decisions, which
name the ``jti``, which finds ``token.issued``; an exchange names the new token, whose
downstream decisions join. Events that end or change the token's session
(``session.revoked``, ``session.version_bumped``...) are added, so a denial is seen after
its cause. A ``sid`` also matches verifiers' ``sid_hash``.

Sources: the audit table, and the JSON-lines decision logs of verifiers and gateways
named in ``console.decision_logs`` (their ``tessera.audit`` lines, shipped to files).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tessera.core.secrets import token_hash
from tessera.identity.compose import Identity
from tessera.observability import events

__all__ = ["FOLLOWED_FIELDS", "TRAIL_FIELDS", "Journey", "Step", "trace"]

TRAIL_FIELDS = ("correlation_id", "token_hash", "new_token_hash", "subject_token_hash",
                "jti", "sid", "sid_hash", "family_id")
"""Fields whose value may equal the needle."""
FOLLOWED_FIELDS = ("correlation_id", "token_hash", "new_token_hash", "subject_token_hash",
                   "jti")
"""Identifiers of the same token or request, followed from matching events."""
_SESSION_EVENTS = frozenset({events.SESSION_CREATED, events.SESSION_IMPERSONATED,
                             events.SESSION_REVOKED,
                             events.SESSION_LOGOUT, events.SESSION_VERSION_BUMPED,
                             events.REFRESH_REUSE_DETECTED})
_ROUNDS = 3
_MAX_VALUES = 64
_MAX_LINE = 64 * 1024
LIMIT = 500


@dataclass(frozen=True, slots=True)
class Step:
    at: float
    event: str
    fields: Mapping[str, Any]
    source: str
    """``audit #<id>`` or ``<file name>:<line>``."""
    order: tuple[int, int, int] = (0, 0, 0)
    """Tie-break between equal times: audit rows by id, then log lines by position."""

    @property
    def service(self) -> str:
        return str(self.fields.get("service") or "identity")

    @property
    def decision(self) -> str:
        if "decision" in self.fields:
            return str(self.fields["decision"])
        return {events.ACCESS_ALLOWED: "allowed",
                events.ACCESS_DENIED: "denied"}.get(self.event, "")

    @property
    def rule(self) -> str:
        """The deciding rule (gateways and verifiers record the matched route)."""
        return str(self.fields.get("rule") or self.fields.get("route") or "")


@dataclass(slots=True)
class Journey:
    needle: str
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Problems worth showing: unreadable logs, a truncated result."""


def _names(fields: Mapping[str, Any], values: frozenset[str],
           names: Iterable[str] = TRAIL_FIELDS) -> bool:
    return any(isinstance(fields.get(f), str) and fields[f] in values for f in names)


def _scan(path: Path, index: int, values: frozenset[str], limit: int) -> list[Step]:
    """Decision lines in ``path`` naming one of ``values`` (blocking: run in a thread)."""
    found: list[Step] = []
    needles = [v.encode() for v in values]
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if len(raw) > _MAX_LINE or not any(n in raw for n in needles):
                continue
            start = raw.find(b"{")  # tolerate a logging prefix before the JSON object
            try:
                obj = orjson.loads(raw[start:]) if start >= 0 else None
            except orjson.JSONDecodeError:
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("event"), str) \
                    or not isinstance(obj.get("at"), int | float) or not _names(obj, values):
                continue
            fields = {k: v for k, v in obj.items() if k not in ("event", "at")}
            found.append(Step(float(obj["at"]), obj["event"], fields,
                              f"{path.name}:{number}", (1, index, number)))
            if len(found) >= limit:
                break
    return found


async def _from_logs(paths: Iterable[Path], values: frozenset[str], limit: int,
                     notes: list[str]) -> list[Step]:
    steps: list[Step] = []
    for index, path in enumerate(paths):
        try:
            steps += await asyncio.to_thread(_scan, path, index, values, limit)
        except OSError as exc:
            note = f"decision log {path.name} not readable ({exc.strerror or 'error'})"
            if note not in notes:
                notes.append(note)
    return steps


async def _from_audit(identity: Identity, values: frozenset[str], limit: int) -> list[Step]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        rows = await uow.audit.naming(sorted(values), fields=TRAIL_FIELDS, limit=limit)
    return [Step(r.record.at, r.record.event, r.record.fields, f"audit #{r.id}", (0, 0, r.id))
            for r in rows]


async def _session_events(identity: Identity, sids: set[str], limit: int) -> list[Step]:
    if not sids:
        return []
    async with identity.store.unit_of_work(read_only=True) as uow:
        rows = await uow.audit.naming(sorted(sids), fields=("sid",), limit=limit)
    return [Step(r.record.at, r.record.event, r.record.fields, f"audit #{r.id}", (0, 0, r.id))
            for r in rows if r.record.event in _SESSION_EVENTS]


async def trace(identity: Identity, needle: str, *, decision_logs: Iterable[Path] = (),
                limit: int = LIMIT) -> Journey:
    journey = Journey(needle)
    logs = list(decision_logs)
    values = frozenset({needle, token_hash(needle)})
    found: dict[str, Step] = {}
    for _ in range(_ROUNDS):
        for step in (await _from_audit(identity, values, limit)
                     + await _from_logs(logs, values, limit, journey.notes)):
            found.setdefault(step.source, step)
        followed = {str(s.fields[f]) for s in found.values() for f in FOLLOWED_FIELDS
                    if isinstance(s.fields.get(f), str)}
        if followed <= values or len(values) >= _MAX_VALUES:
            break
        values = values | frozenset(sorted(followed - values)[:_MAX_VALUES - len(values)])
    sids = {s.fields["sid"] for s in found.values() if isinstance(s.fields.get("sid"), str)}
    for step in await _session_events(identity, sids, limit):
        found.setdefault(step.source, step)
    steps = sorted(found.values(), key=lambda s: (s.at, s.order))
    if len(steps) > limit:
        journey.notes.append(f"showing the first {limit} of {len(steps)} events")
        steps = steps[:limit]
    journey.steps = steps
    return journey
