"""Revocation history: *when* each revocation happened, remembered past the token horizon.

``RevocationState`` answers "is this credential revoked now?" and keeps no times for
sessions, tokens or versions; it also forgets an entry as soon as every access token it
covers has expired. An identity envelope outlives its access token (up to
``MAX_ENVELOPE_TTL``) and the ``authorized_at_emission`` policy asks what the state
cannot: "was it revoked when the envelope was emitted?". The history keeps each event
(with its ``at``) ``retain`` seconds longer than the state would, and answers by
replaying the events that name one credential into a scratch ``RevocationState`` — the
same rules as the state, never a second implementation::

    revoked(view)              what the state would say now (with the longer memory)
    revoked(view, as_of=t)     what it would have said at t (events with at <= t)

Completeness. A snapshot holds the events still live when it was taken, so after a
snapshot load at ``known_since`` the history knows every event with ``expires_at`` >
``known_since``. Every event that revokes an access token is kept (by the identity
service) until at least that token's ``exp`` + the verifier leeway, so for a token with
``exp + leeway > known_since`` the history is complete until ``exp + leeway + retain``
(``covers``). Outside that window a consumer cannot vouch either way and must say so.

Feed it what the ``RevocationState`` gets: ``history.recording(source, clock=clock)``
wraps the follower's event source, so snapshots and tail events reach both.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import AsyncIterator, Hashable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from tessera.core import revocation_snapshot as snapshot_columns
from tessera.core.clock import Clock
from tessera.verifier._policy import MAX_ENVELOPE_TTL
from tessera.verifier._token import VerifiedToken
from tessera.verifier.errors import Denied, InvalidEvent
from tessera.verifier.revocation.follower import EventSource
from tessera.verifier.revocation.state import EventKind, RevocationState

__all__ = ["RevocationHistory"]


class RevocationHistory:
    """Revocation events with their times, kept until ``expires_at + retain``.

    Not thread-safe: one event loop owns it, like ``RevocationState``.
    """

    def __init__(self, *, retain: float = MAX_ENVELOPE_TTL) -> None:
        if not retain >= 0 or math.isinf(retain):
            raise ValueError("retain must be a non-negative number of seconds")
        self.retain = retain
        """Seconds an event is kept past its ``expires_at`` (≥ the longest envelope
        lifetime the consumer accepts)."""
        self._events: dict[Hashable, Mapping[str, Any]] = {}
        self._index: dict[str, set[Hashable]] = {}
        self._expiry: list[tuple[float, int, Hashable]] = []
        self._order = itertools.count()
        self._cursor = 0
        self._known_since: float | None = None

    @property
    def cursor(self) -> int:
        return self._cursor

    @property
    def known_since(self) -> float | None:
        """When the last snapshot was loaded (None: never — the history vouches for
        nothing)."""
        return self._known_since

    def __len__(self) -> int:
        return len(self._events)

    # -- writing ---------------------------------------------------------------------

    def load_snapshot(self, snapshot: Mapping[str, Any], *, now: float) -> None:
        """Merge a snapshot (shape as ``RevocationState.load_snapshot``). Revocations
        are never undone, so events held already are kept; ``known_since`` becomes
        ``now``. Atomic: on ``InvalidEvent`` nothing changes."""
        if not isinstance(snapshot, Mapping):
            raise InvalidEvent("a snapshot is an object")
        seq, events = snapshot.get("seq"), snapshot.get("events")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise InvalidEvent("snapshot seq must be a non-negative integer")
        if "format" in snapshot:  # the columns shape: the history keeps events
            try:
                events = snapshot_columns.events_of(snapshot)
            except snapshot_columns.ColumnsError as exc:
                raise InvalidEvent(str(exc)) from None
        if not isinstance(events, list):
            raise InvalidEvent("snapshot events must be a list")
        _validate(events)
        for event in events:
            self._record(event)
        self._cursor = seq
        self._known_since = now
        self.prune(now)

    def apply(self, event: Mapping[str, Any], *, now: float) -> bool:
        """Record one bus event; ``False`` (no-op) if its ``seq`` is not past the cursor.
        Raises ``InvalidEvent`` (nothing recorded) if ``RevocationState`` would."""
        seq = event.get("seq") if isinstance(event, Mapping) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise InvalidEvent("seq must be a non-negative integer")
        applied = seq > self._cursor
        if applied:
            _validate([event])
            self._record(event)
            self._cursor = seq
        self.prune(now)
        return applied

    def prune(self, now: float) -> int:
        """Forget events kept past ``expires_at + retain``; returns how many."""
        removed = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, _, ident = heapq.heappop(self._expiry)
            event = self._events.pop(ident, None)
            if event is None:
                continue
            removed += 1
            for name in _lookup_keys(event):
                idents = self._index.get(name)
                if idents is not None:
                    idents.discard(ident)
                    if not idents:
                        del self._index[name]
        return removed

    def _record(self, event: Mapping[str, Any]) -> None:
        ident = _identity(event)
        if ident in self._events:
            return
        event = dict(event)
        self._events[ident] = event
        for name in _lookup_keys(event):
            self._index.setdefault(name, set()).add(ident)
        keep_until = float(event["expires_at"]) + self.retain
        heapq.heappush(self._expiry, (keep_until, next(self._order), ident))

    # -- reading ---------------------------------------------------------------------

    def revoked(self, token: VerifiedToken, *, as_of: float | None = None) -> Denied | None:
        """The ``Denied`` a ``RevocationState`` holding the events with ``at <= as_of``
        (all events if ``as_of`` is None) would raise for ``token``; None if none."""
        idents: set[Hashable] = set()
        for name in (token.jti, token.sid, token.sub, token.tid, token.client_id):
            if name is not None:
                idents |= self._index.get(name, set())
        events = [self._events[i] for i in idents
                  if as_of is None or float(self._events[i]["at"]) <= as_of]
        if not events:
            return None
        scratch = RevocationState()
        scratch.load_snapshot({"seq": 0, "events": events})
        try:
            scratch.check(token)
        except Denied as denied:
            return denied
        return None

    def covers(self, token: VerifiedToken, *, now: float, leeway: float) -> bool:
        """Whether every event that could revoke ``token`` is known at ``now``."""
        horizon = token.exp + leeway
        return (self._known_since is not None and self._known_since < horizon
                and now < horizon + self.retain)

    def recording(self, source: EventSource, *, clock: Clock) -> EventSource:
        """``source``, recording into this history everything it hands a follower."""
        return _RecordingSource(self, source, clock)


class _RecordingSource:
    def __init__(self, history: RevocationHistory, source: EventSource, clock: Clock) -> None:
        self._history = history
        self._source = source
        self._clock = clock

    @property
    def has_snapshot(self) -> bool:
        return bool(getattr(self._source, "has_snapshot", False))

    async def snapshot(self) -> Mapping[str, Any]:
        snapshot = await self._source.snapshot()
        self._history.load_snapshot(snapshot, now=self._clock.now())
        return snapshot

    async def events_after(self, after: int) -> Mapping[str, Any]:
        page = await self._source.events_after(after)
        events = page.get("events")
        if isinstance(events, list):
            now = self._clock.now()
            for event in events:
                self._history.apply(event, now=now)
        return page

    async def follow(self, after: int) -> AsyncIterator[Sequence[Mapping[str, Any]]]:
        async for batch in self._source.follow(after):
            now = self._clock.now()
            for event in batch:
                self._history.apply(event, now=now)
            if not batch:
                self._history.prune(now)
            yield batch

    async def aclose(self) -> None:
        await self._source.aclose()


def _validate(events: Iterable[object]) -> None:
    """Refuse exactly what ``RevocationState`` refuses (its own parser decides)."""
    RevocationState().load_snapshot({"seq": 0, "events": list(events)})


def _identity(event: Mapping[str, Any]) -> Hashable:
    seq = event.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool):
        return seq
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def _lookup_keys(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The credential identifiers an event can match: its key, and for a revoked
    family the session it belongs to."""
    key: str = event["key"]
    if event.get("kind") == EventKind.FAMILY_REVOKED:
        data = event.get("data") or {}
        sid = data.get("sid")
        if isinstance(sid, str) and sid:
            return (key, sid)
    return (key,)
