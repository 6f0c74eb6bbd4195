"""Local revocation state: what this verifier knows from the bus, with O(1) lookups.

Event shape (one per state change, ``tessera.core.revocation.RevocationEvent`` as JSON)::

    {"seq": int, "kind": str, "key": str, "at": float, "expires_at": float, "data": {...}}

============================  ============  ==============================================
kind                          key           effect on tokens
============================  ============  ==============================================
``token.revoked``             jti           that token: ``token_revoked``
``session.revoked``           sid           tokens of that session: ``session_revoked``
``family.revoked``            family_id     tokens of ``data["sid"]`` issued to
                                            ``data["client_id"]`` with ``iat`` <= before:
                                            ``family_revoked``
``user.revoked``              user id       ``sub`` = key and ``iat`` <= before:
                                            ``user_revoked``
``tenant.revoked``            tenant id     ``tid`` = key and ``iat`` <= before:
                                            ``tenant_revoked``
``client.revoked``            client_id     ``client_id`` = key and ``iat`` <= before:
                                            ``client_revoked``
``session.version_bumped``    sid           ``sv`` < ``data["sv"]``: ``stale_session_version``
``key.rotated``               kid           none; bumps ``key_epoch`` (JWKS refetch hint)
============================  ============  ==============================================

"before" is ``data["before"]`` if present, else ``at``. An entry is kept until its
``expires_at`` (the latest expiry of any token it covers) and then pruned, so memory is
bounded by what can still matter. Kinds this version does not know advance the cursor
and are counted in ``ignored_events``.

Snapshot shape (``load_snapshot``): ``{"seq": int, "events": [event, ...], "watermark":
{...}}`` — the live events as of ``seq`` (their own ``seq`` may be omitted); the cursor
becomes ``seq`` and the tail is then replayed with ``apply`` from ``seq + 1``. The same
events may come as columns (``tessera.core.revocation_snapshot``: ``"format":
"columns/1"``, what ``HttpFeedSource`` asks for), which are read into the state without
building an event per entry.

Freshness is proven, never assumed (``tessera.core.freshness``): the state is fresh only
while it holds every event up to a watermark of the source of truth received within the
bound (``observe_watermark``; a snapshot's own ``watermark`` counts). A state that never
loaded a snapshot (``loaded`` false) has nothing to serve from; one that never held a
watermark has infinite lag. Receiving an event or an empty read proves nothing.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from tessera.core import revocation_snapshot as snapshot_columns
from tessera.core.freshness import Freshness, Watermark, WatermarkError
from tessera.core.revocation import RevocationKind
from tessera.protocol.rfc9068.token import TokenRejected
from tessera.protocol.rfc9068.validator import (
    NO_GRAINS,
    NOTHING_KNOWN,
    GrainFacts,
    SessionFacts,
    check_revocation,
)
from tessera.verifier._token import VerifiedToken
from tessera.verifier.errors import Denied, InvalidEvent

__all__ = [
    "EventKind",
    "RevocationState",
]

_V = TypeVar("_V")

_GENERATIONS = itertools.count(1)
"""Process-wide: no two states, nor two versions of one state, share a generation."""


EventKind = RevocationKind
"""Event kinds: the identity service's own names (one definition, in the pure core)."""


class _ExpiryIndex:
    """Keys bucketed by expiry: pruning touches only buckets that have fully expired."""

    __slots__ = ("_buckets", "_granularity", "_heap")

    def __init__(self, granularity: float) -> None:
        self._granularity = granularity
        self._buckets: dict[int, list[str]] = {}
        self._heap: list[int] = []

    def schedule(self, key: str, expires_at: float) -> None:
        bucket = math.ceil(expires_at / self._granularity)
        keys = self._buckets.get(bucket)
        if keys is None:
            self._buckets[bucket] = keys = []
            heapq.heappush(self._heap, bucket)
        keys.append(key)

    def next_due(self) -> float:
        """When the earliest bucket expires (``inf``: none is scheduled)."""
        return self._heap[0] * self._granularity if self._heap else math.inf

    def due(self, now: float) -> Iterator[str]:
        """Keys scheduled to expire at or before ``now`` (each bucket handed out once)."""
        heap, granularity = self._heap, self._granularity
        while heap and heap[0] * granularity <= now:
            yield from self._buckets.pop(heapq.heappop(heap))


class _ExpiringSet:
    __slots__ = ("_index", "data")

    def __init__(self, granularity: float) -> None:
        self._index = _ExpiryIndex(granularity)
        self.data: dict[str, float] = {}
        """key → expires_at"""

    def add(self, key: str, expires_at: float) -> None:
        old = self.data.get(key)
        if old is None or expires_at > old:
            self.data[key] = expires_at
            self._index.schedule(key, expires_at)

    def prune(self, now: float) -> int:
        data, removed = self.data, 0
        for key in self._index.due(now):
            expiry = data.get(key)
            if expiry is not None and expiry <= now:
                del data[key]
                removed += 1
        return removed


class _ExpiringMap(Generic[_V]):
    __slots__ = ("_index", "_merge", "data")

    def __init__(self, granularity: float, merge: Callable[[_V, _V], _V]) -> None:
        self._index = _ExpiryIndex(granularity)
        self._merge = merge
        self.data: dict[str, tuple[_V, float]] = {}
        """key → (value, expires_at)"""

    def put(self, key: str, value: _V, expires_at: float) -> None:
        old = self.data.get(key)
        if old is not None:
            value = self._merge(old[0], value)
            if expires_at <= old[1]:
                self.data[key] = (value, old[1])
                return
        self.data[key] = (value, expires_at)
        self._index.schedule(key, expires_at)

    def prune(self, now: float) -> int:
        data, removed = self.data, 0
        for key in self._index.due(now):
            entry = data.get(key)
            if entry is not None and entry[1] <= now:
                del data[key]
                removed += 1
        return removed


class RevocationState:
    """Revoked jtis, sids, families; revoked-before times per user, tenant and client;
    current session versions; the cursor and when the bus was last heard from.

    Not thread-safe: one event loop owns it (the bus follower writes, requests read).
    """

    def __init__(self, *, prune_granularity: float = 60.0) -> None:
        if prune_granularity <= 0:
            raise ValueError("prune_granularity must be positive")
        g = prune_granularity
        self._granularity = g
        self._jtis = _ExpiringSet(g)
        self._sids = _ExpiringSet(g)
        self._families = _ExpiringSet(g)
        self._family_grants: _ExpiringMap[float] = _ExpiringMap(g, max)
        """(sid, client_id) → revoked-before: access tokens carry no family id, so a revoked
        family revokes what its session issued to its client up to that moment."""
        self._users: _ExpiringMap[float] = _ExpiringMap(g, max)
        self._tenants: _ExpiringMap[float] = _ExpiringMap(g, max)
        self._clients: _ExpiringMap[float] = _ExpiringMap(g, max)
        self._versions: _ExpiringMap[int] = _ExpiringMap(g, max)
        self._revoked_before = {
            EventKind.USER_REVOKED: self._users,
            EventKind.TENANT_REVOKED: self._tenants,
            EventKind.CLIENT_REVOKED: self._clients,
        }
        self._expiries: dict[int, int] = {}
        self._quiet_until = -math.inf
        """``prune`` has nothing to do before this time: no entry expires earlier (every
        addition lowers it to its expiry, a prune sets it to the earliest bucket's)."""
        self._cursor = 0
        self._freshness = Freshness()
        self.loaded = False
        """A snapshot was loaded: there is a state to serve from (never-loaded refuses)."""
        self.key_epoch = 0
        self.announced_kid: str | None = None
        """The kid the latest ``key.rotated`` event says now signs."""
        """Incremented by every ``key.rotated`` event: a JWKS cache should refetch."""
        self.ignored_events = 0
        """Events of kinds this version does not know (cursor advanced past them)."""
        self.generation = next(_GENERATIONS)
        """Changes whenever an event is applied or a snapshot loaded, unique in the
        process: a revocation check that passed at one generation passes again at the
        same one (pruning only forgets entries), so a verified-token cache may skip it
        (``VerifiedTokenCache.revocation_passed``)."""

    # -- reading ---------------------------------------------------------------------

    @property
    def cursor(self) -> int:
        """``seq`` of the last applied event (or of the loaded snapshot); 0 if none."""
        return self._cursor

    @property
    def fresh_at(self) -> float | None:
        """Time of the newest watermark this state holds (``None``: never proven fresh)."""
        return self._freshness.fresh_at

    def lag(self, now: float) -> float:
        """Seconds since the newest watermark this state holds (``inf`` if none): how far
        behind the source of truth it may be."""
        return self._freshness.lag(now)

    def is_stale(self, now: float, bound: float) -> bool:
        return self.lag(now) > bound

    def __len__(self) -> int:
        """Entries held (every grain); what pruning keeps bounded."""
        return sum(len(t.data) for t in self._tables())

    def __bool__(self) -> bool:
        """Always true: an empty state is still a state (``state or default`` stays safe)."""
        return True

    def check(self, token: VerifiedToken) -> None:
        """Raise ``Denied`` if anything this state knows revokes ``token`` (the shared
        rule, ``validator.check_revocation``, with this state as its source)."""
        try:
            check_revocation(token, self)
        except TokenRejected as exc:
            raise Denied.of(exc) from None

    # -- RevocationSource (protocol.rfc9068.validator) ---------------------------------

    def token_revoked(self, jti: str) -> bool:
        return jti in self._jtis.data

    def session(self, sid: str, client_id: str) -> SessionFacts:
        revoked = sid in self._sids.data
        grants = self._family_grants.data
        family = grants.get(f"{sid}\x00{client_id}") if grants else None
        version = self._versions.data.get(sid)
        if not revoked and family is None and version is None:
            return NOTHING_KNOWN
        return SessionFacts(revoked, None if family is None else family[0],
                            None if version is None else version[0])

    def grains(self, user_id: str, tenant_id: str, client_id: str) -> GrainFacts:
        user = self._users.data.get(user_id)
        tenant = self._tenants.data.get(tenant_id)
        client = self._clients.data.get(client_id)
        if user is None and tenant is None and client is None:
            return NO_GRAINS
        return GrainFacts(None if user is None else user[0],
                          None if tenant is None else tenant[0],
                          None if client is None else client[0])

    # -- writing ---------------------------------------------------------------------

    def apply(self, event: Mapping[str, Any], *, now: float | None = None) -> bool:
        """Apply one event (the next in sequence order); ``False`` (no-op) if its ``seq``
        is not past the cursor. ``now``, when given, prunes expired entries.

        Raises ``InvalidEvent`` (state unchanged) if the event is malformed.
        """
        seq = event.get("seq") if type(event) is dict or isinstance(event, Mapping) else None
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise InvalidEvent("seq must be a non-negative integer")
        applied = seq > self._cursor
        if applied:
            self.generation = next(_GENERATIONS)  # first: a failed apply may have added
            self._apply(event)
            self._cursor = seq
            self._freshness.advanced(seq)
        if now is not None:
            self.prune(now)
        return applied

    def observe_watermark(self, watermark: Watermark | Mapping[str, Any], *,
                          now: float) -> None:
        """A watermark of the source of truth, received at ``now``: it proves freshness
        as of its ``at`` once the cursor has reached its ``head`` (at once, or later as
        events are applied). Raises ``InvalidEvent`` for a malformed one."""
        if not isinstance(watermark, Watermark):
            try:
                watermark = Watermark.from_wire(watermark)
            except WatermarkError as exc:
                raise InvalidEvent(str(exc)) from None
        self._freshness.observe(watermark, cursor=self._cursor, now=now)
        self.prune(now)

    def confirm(self, at: float) -> None:
        """For a state fed by hand (``source="none"``): the caller vouches that it holds
        every event committed before ``at`` (a watermark at the current cursor). Also
        marks the state loaded. The bus followers never call this."""
        self.loaded = True
        self._freshness.observe(Watermark(self._cursor, at), cursor=self._cursor, now=at)
        self.prune(at)

    def load_snapshot(self, snapshot: Mapping[str, Any], *, now: float | None = None) -> None:
        """Replace the whole state with ``snapshot`` (shape in the module docstring).

        Atomic: on ``InvalidEvent`` the current state is kept.
        """
        if not isinstance(snapshot, Mapping):
            raise InvalidEvent("a snapshot is an object")
        seq, events = snapshot.get("seq"), snapshot.get("events")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise InvalidEvent("snapshot seq must be a non-negative integer")
        fresh = RevocationState(prune_granularity=self._granularity)
        if "format" in snapshot:
            fresh._load_columns(snapshot)
        elif not isinstance(events, list):
            raise InvalidEvent("snapshot events must be a list")
        else:
            for event in events:
                fresh._apply(event)
        watermark = snapshot.get("watermark")
        parsed = None
        if watermark is not None:
            try:
                parsed = Watermark.from_wire(watermark)
            except WatermarkError as exc:
                raise InvalidEvent(str(exc)) from None
        fresh._cursor = seq
        fresh._freshness = self._freshness  # what was proven stays proven
        fresh._freshness.advanced(seq)
        fresh.loaded = True
        fresh.key_epoch += self.key_epoch
        fresh.ignored_events += self.ignored_events
        vars(self).update(vars(fresh))
        if parsed is not None:
            self._freshness.observe(parsed, cursor=seq, now=parsed.at if now is None else now)
        if now is not None:
            self.prune(now)

    def prune(self, now: float) -> int:
        """Drop entries whose ``expires_at`` <= ``now``; returns how many. Until the
        earliest entry can expire it returns at once (the follower prunes after every
        batch)."""
        if now < self._quiet_until:
            return 0
        tables = self._tables()
        removed = sum(t.prune(now) for t in tables)
        self._quiet_until = min((t._index.next_due() for t in tables), default=math.inf)
        return removed

    def _tables(self) -> tuple[_ExpiringSet | _ExpiringMap[Any], ...]:
        return (self._jtis, self._sids, self._families, self._family_grants, self._users,
                self._tenants, self._clients, self._versions)

    def _expiry(self, expires_at: float) -> int:
        """``expires_at`` rounded up to the second (an entry is kept a little longer, never
        shorter), one shared object per second: a million entries hold a few hundred
        numbers, not a million (bench/scale.py, docs/scale.md)."""
        second = math.ceil(expires_at)
        shared = self._expiries
        if len(shared) > 4096:
            shared.clear()
        return shared.setdefault(second, second)

    def _load_columns(self, snapshot: Mapping[str, Any]) -> None:
        """A columns snapshot into this (fresh) state. The common kinds (a revoked token
        or session, a session version) go straight into their tables: a whole run of one
        kind at once with the interpreter's bulk operations when the snapshot is grouped
        by kind (as the identity service sends it), else in one loop without a call per
        entry; other kinds through ``_apply``. Refuses what ``_apply`` refuses."""
        try:
            kinds, (_, codes, keys, ats, expiries, datas) = snapshot_columns.checked(snapshot)
        except snapshot_columns.ColumnsError as exc:
            raise InvalidEvent(str(exc)) from None
        fast = (EventKind.TOKEN_REVOKED, EventKind.SESSION_REVOKED,
                EventKind.SESSION_VERSION_BUMPED)
        routes = [fast.index(kind) if kind in fast else -1 for kind in kinds]
        if codes != sorted(codes):
            self._load_rows(kinds, routes, codes, keys, ats, expiries, datas)
            return
        lo = 0
        while lo < len(codes):
            code = codes[lo]
            hi = bisect.bisect_right(codes, code, lo)
            run = (keys[lo:hi], ats[lo:hi], expiries[lo:hi], datas[lo:hi])
            if routes[code] < 0 or not self._load_run(routes[code], *run):
                self._load_rows(kinds, routes, codes[lo:hi], *run)
            lo = hi

    def _load_run(self, route: int, keys: list[Any], ats: list[Any], expiries: list[Any],
                  datas: list[Any]) -> bool:
        """One run of a common kind into its empty table, with no Python-level loop per
        entry; False (nothing changed) if anything needs the entry-by-entry path: a
        value to refuse, a key twice."""
        tables = (self._jtis, self._sids, self._versions)
        table = tables[route]
        if table.data or not keys or not {str} >= set(map(type, keys)) or not all(keys) \
                or not set(map(type, ats)) | set(map(type, expiries)) <= _NUMBER_SET \
                or not all(map(math.isfinite, ats)) or not all(map(math.isfinite, expiries)):
            return False
        if route < 2:
            if not set(map(type, datas)) <= _DATA_TYPES:
                return False
        else:
            if not {dict} >= set(map(type, datas)):
                return False
            svs = list(map(dict.get, datas, itertools.repeat("sv")))
            if not {int} >= set(map(type, svs)):
                return False
        shared = self._expiries
        seconds = list(map(math.ceil, expiries))
        seconds = list(map(shared.setdefault, seconds, seconds))
        values: list[Any] = seconds if route < 2 else list(zip(svs, seconds, strict=True))
        entries = dict(zip(keys, values, strict=True))
        if len(entries) != len(keys):
            return False
        table.data.update(entries)
        if len(shared) > 4096:
            shared.clear()
        index = table._index
        buckets = list(map(math.ceil, map(operator.truediv, seconds,
                                          itertools.repeat(self._granularity))))
        if buckets != sorted(buckets):
            for key, second in zip(keys, seconds, strict=True):
                index.schedule(key, second)
            return True
        lo = 0
        while lo < len(buckets):  # a few dozen buckets, not an entry at a time
            bucket = buckets[lo]
            hi = bisect.bisect_right(buckets, bucket, lo)
            scheduled = index._buckets.get(bucket)
            if scheduled is None:
                index._buckets[bucket] = scheduled = []
                heapq.heappush(index._heap, bucket)
            scheduled.extend(keys[lo:hi])
            lo = hi
        return True

    def _load_rows(self, kinds: list[str], routes: list[int], codes: list[int],
                   keys: list[Any], ats: list[Any], expiries: list[Any],
                   datas: list[Any]) -> None:
        sets = (self._jtis.data, self._sids.data)
        versions = self._versions.data
        indexes = (self._jtis._index, self._sids._index, self._versions._index)
        buckets = tuple(index._buckets for index in indexes)
        heaps = tuple(index._heap for index in indexes)
        shared = self._expiries
        granularity = self._granularity
        ceil, isfinite, heappush = math.ceil, math.isfinite, heapq.heappush
        try:
            for code, key, at, expires_at, data in zip(codes, keys, ats, expiries, datas,
                                                       strict=True):
                route = routes[code]
                if route < 0 or type(at) not in _NUMBER or not isfinite(at):
                    self._apply({"kind": kinds[code], "key": key, "at": at,
                                 "expires_at": expires_at, "data": data})
                    continue
                if type(key) is not str or not key:
                    raise InvalidEvent("kind and key must be strings")
                if type(expires_at) not in _NUMBER:
                    raise InvalidEvent("expires_at must be a number")
                second = ceil(expires_at)
                second = shared.setdefault(second, second)
                if route < 2:
                    if data is not None and type(data) is not dict:
                        raise InvalidEvent("data must be an object")
                    table = sets[route]
                    old = table.get(key)
                    if old is not None and second <= old:
                        continue
                    table[key] = second
                else:
                    sv = data.get("sv") if type(data) is dict else None
                    if type(sv) is not int:
                        raise InvalidEvent("session.version_bumped data.sv must be an "
                                           "integer")
                    entry = versions.get(key)
                    if entry is not None:
                        if second <= entry[1]:
                            if sv > entry[0]:
                                versions[key] = (sv, entry[1])
                            continue
                        sv = max(sv, entry[0])
                    versions[key] = (sv, second)
                # _ExpiryIndex.schedule, inline
                bucket = ceil(second / granularity)
                scheduled = buckets[route].get(bucket)
                if scheduled is None:
                    buckets[route][bucket] = scheduled = []
                    heappush(heaps[route], bucket)
                scheduled.append(key)
        except (OverflowError, ValueError):  # math.ceil of an infinite or NaN expiry
            raise InvalidEvent("expires_at must be a number") from None
        if len(shared) > 4096:
            shared.clear()

    def _apply(self, event: object) -> None:
        if type(event) is not dict and not isinstance(event, Mapping):  # dict: no ABC check
            raise InvalidEvent("an event is an object")
        kind, key = event.get("kind"), event.get("key")
        at, expires_at = _number(event, "at"), self._expiry(_number(event, "expires_at"))
        if expires_at < self._quiet_until:
            self._quiet_until = expires_at
        data = event.get("data")
        if data is None:
            data = {}
        if not isinstance(kind, str) or not isinstance(key, str) or not key:
            raise InvalidEvent("kind and key must be strings")
        # Our own copy of the key: the parsed event (and its strings) is then freed whole,
        # instead of pinning half-empty allocator pages for as long as the entry lives.
        key = key.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
        if type(data) is not dict and not isinstance(data, Mapping):
            raise InvalidEvent("data must be an object")
        if kind == EventKind.TOKEN_REVOKED:
            self._jtis.add(key, expires_at)
        elif kind == EventKind.SESSION_REVOKED:
            self._sids.add(key, expires_at)
        elif kind == EventKind.FAMILY_REVOKED:
            sid, client_id = data.get("sid"), data.get("client_id")
            for name, value in (("sid", sid), ("client_id", client_id)):
                if value is not None and (not isinstance(value, str) or not value):
                    raise InvalidEvent(f"family.revoked data.{name} must be a string")
            before = _number(data, "before") if "before" in data else at
            self._families.add(key, expires_at)
            if sid is not None and client_id is not None:
                self._family_grants.put(f"{sid}\x00{client_id}", before, expires_at)
        elif kind in self._revoked_before:
            before = _number(data, "before") if "before" in data else at
            self._revoked_before[kind].put(key, before, expires_at)
        elif kind == EventKind.SESSION_VERSION_BUMPED:
            sv = data.get("sv")
            if not isinstance(sv, int) or isinstance(sv, bool):
                raise InvalidEvent("session.version_bumped data.sv must be an integer")
            self._versions.put(key, sv, expires_at)
        elif kind == EventKind.KEY_ROTATED:
            self.key_epoch += 1
            active = data.get("active", key)
            self.announced_kid = active if isinstance(active, str) and active else key
        else:
            self.ignored_events += 1


_NUMBER = (int, float)
_NUMBER_SET = frozenset(_NUMBER)
_DATA_TYPES = frozenset({dict, type(None)})


def _number(mapping: Mapping[Any, Any], name: str) -> float:
    value = mapping.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) \
            or not math.isfinite(value):  # an infinite expiry cannot be scheduled
        raise InvalidEvent(f"{name} must be a number")
    return float(value)
