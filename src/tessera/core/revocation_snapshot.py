"""The compact shape of a revocation snapshot: the same events as parallel arrays.

A snapshot of a million live sessions is about a million events. As one JSON object per
event it costs a verifier two dictionaries per event to parse and as many to free
(docs/scale.md: 59 s for 1M on a loaded machine). As columns it is five arrays of plain
values and one of ``data`` (``null`` when empty), which the verifier reads straight into
its state without building an event::

    {"format": "columns/1", "seq": int, "watermark": {...},
     "kinds": ["session.revoked", ...],          # the kinds present, once each
     "columns": {"seq": [int, ...], "kind": [index into kinds, ...], "key": [str, ...],
                 "at": [number, ...], "expires_at": [number, ...],
                 "data": [object | null, ...]}}

Event ``i`` is ``{"seq": seq[i], "kind": kinds[kind[i]], "key": key[i], "at": at[i],
"expires_at": expires_at[i], "data": data[i] or {}}``. The events are grouped by kind,
and within the kinds a verifier holds in bulk ordered by expiry (each event keeps its
``seq``; a state does not depend on the order of events of different kinds), so a
verifier loads a run of one kind at once. It is
served to clients that ask for ``COLUMNS_MEDIA_TYPE`` (``Accept``); others get the
``{"seq", "events", "watermark"}`` shape as before.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from typing import Any

from tessera.core.revocation import RevocationEvent, RevocationKind

__all__ = ["COLUMNS_FORMAT", "COLUMNS_MEDIA_TYPE", "ColumnsError", "checked", "columns_of",
           "events_of"]

COLUMNS_MEDIA_TYPE = "application/vnd.tessera.revocation-snapshot.columns+json"
COLUMNS_FORMAT = "columns/1"
_NAMES = ("seq", "kind", "key", "at", "expires_at", "data")


class ColumnsError(ValueError):
    """A columns snapshot that does not have the documented shape."""


def columns_of(events: Iterable[RevocationEvent]) -> tuple[list[str], dict[str, list[Any]]]:
    """``(kinds, columns)`` of ``events``, grouped by kind (kinds in order of first
    appearance); the kinds a verifier holds in bulk (a revoked token or session, a
    session version) by expiry, every other kind in the given (sequence) order."""
    groups: dict[str, list[RevocationEvent]] = {}
    for event in events:
        group = groups.get(event.kind)
        if group is None:
            groups[event.kind] = group = []
        group.append(event)
    codes: list[int] = []
    for code, (kind, group) in enumerate(groups.items()):
        if kind in _BY_EXPIRY:
            group.sort(key=_EXPIRY)  # stable
        codes += [code] * len(group)
    listed = [event for group in groups.values() for event in group]
    return list(groups), {
        "seq": [e.seq for e in listed], "kind": codes, "key": [e.key for e in listed],
        "at": [e.at for e in listed], "expires_at": [e.expires_at for e in listed],
        "data": [e.data or None for e in listed]}


_BY_EXPIRY = frozenset({RevocationKind.TOKEN_REVOKED, RevocationKind.SESSION_REVOKED,
                        RevocationKind.SESSION_VERSION_BUMPED})
_EXPIRY = operator.attrgetter("expires_at")


def checked(snapshot: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """``(kinds, [seq, kind, key, at, expires_at, data])`` of a columns snapshot, the
    columns' shape checked (lists of one length; kind indexes in range). The values
    themselves are checked by whoever reads them, as for events."""
    if snapshot.get("format") != COLUMNS_FORMAT:
        raise ColumnsError(f"unknown snapshot format {snapshot.get('format')!r}")
    kinds, columns = snapshot.get("kinds"), snapshot.get("columns")
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise ColumnsError("kinds must be a list of strings")
    if not isinstance(columns, Mapping):
        raise ColumnsError("columns must be an object")
    lists = [columns.get(name) for name in _NAMES]
    if not all(isinstance(column, list) for column in lists):
        raise ColumnsError(f"columns must hold the lists {', '.join(_NAMES)}")
    if len({len(column) for column in lists}) > 1:  # type: ignore[arg-type]
        raise ColumnsError("the columns must have one length")
    codes = lists[1]
    assert isinstance(codes, list)
    if codes and (not set(map(type, codes)) <= {int}
                  or not 0 <= min(codes) <= max(codes) < len(kinds)):
        raise ColumnsError("kind must hold indexes into kinds")
    return kinds, lists  # type: ignore[return-value]


def events_of(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The events (wire shape) of a columns snapshot: for consumers that want events
    (the revocation history), not for the verifier's state."""
    kinds, (seqs, codes, keys, ats, expiries, datas) = checked(snapshot)
    return [{"seq": seq, "kind": kinds[code], "key": key, "at": at, "expires_at": expires_at,
             "data": {} if data is None else data}
            for seq, code, key, at, expires_at, data
            in zip(seqs, codes, keys, ats, expiries, datas, strict=True)]
