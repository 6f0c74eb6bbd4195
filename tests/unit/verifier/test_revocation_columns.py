"""The columns snapshot (``tessera.core.revocation_snapshot``): the same state as the
events it carries, by the bulk path and by the entry-by-entry path, and refused whole
when malformed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tessera.core.revocation import RevocationEvent
from tessera.core.revocation_snapshot import COLUMNS_FORMAT, columns_of, events_of
from tessera.verifier import InvalidEvent
from tessera.verifier.revocation import RevocationState

from ._support import NOW


def mixed_events() -> list[RevocationEvent]:
    """Every kind, keys repeated (a later version, a longer expiry), expiries out of
    order, a kind this version does not know."""
    events = [
        RevocationEvent("session.version_bumped", "s1", NOW, NOW + 300, {"sv": 2}),
        RevocationEvent("session.revoked", "s2", NOW, NOW + 900, {"sub": "u1"}),
        RevocationEvent("token.revoked", "j1", NOW, NOW + 120.5),
        RevocationEvent("session.version_bumped", "s1", NOW + 1, NOW + 200, {"sv": 3}),
        RevocationEvent("family.revoked", "f1", NOW, NOW + 600,
                        {"sid": "s3", "client_id": "c1", "before": NOW - 5}),
        RevocationEvent("user.revoked", "u9", NOW, NOW + 600, {"before": NOW}),
        RevocationEvent("tenant.revoked", "t9", NOW, NOW + 600, {}),
        RevocationEvent("client.revoked", "c9", NOW, NOW + 600, {"before": NOW}),
        RevocationEvent("key.rotated", "k1", NOW, NOW + 600, {"active": "k2"}),
        RevocationEvent("session.revoked", "s2", NOW, NOW + 1900, {}),
        RevocationEvent("token.revoked", "j2", NOW, NOW + 60),
        RevocationEvent("future.kind", "x", NOW, NOW + 600, {}),
        RevocationEvent("key.rotated", "k3", NOW, NOW + 600, {}),
    ]
    return [RevocationEvent(e.kind, e.key, e.at, e.expires_at, e.data, seq)
            for seq, e in enumerate(events, start=1)]


def bulk_events(n: int) -> list[RevocationEvent]:
    return [RevocationEvent(kind, f"{kind}-{i}", NOW, NOW + 60 + i, {"sv": 2}
                            if kind == "session.version_bumped" else {}, seq)
            for seq, (i, kind) in enumerate(
                ((i, k) for i in range(n)
                 for k in ("session.version_bumped", "token.revoked", "session.revoked")),
                start=1)]


def as_events(events: list[RevocationEvent]) -> dict[str, Any]:
    return {"seq": len(events), "events": [
        {"seq": e.seq, "kind": e.kind, "key": e.key, "at": e.at, "expires_at": e.expires_at,
         "data": e.data} for e in events],
        "watermark": {"head": len(events), "at": NOW, "epoch": None}}


def as_columns(events: list[RevocationEvent]) -> dict[str, Any]:
    kinds, columns = columns_of(events)
    return {"format": COLUMNS_FORMAT, "seq": len(events), "kinds": kinds,
            "columns": columns, "watermark": {"head": len(events), "at": NOW, "epoch": None}}


def shape(state: RevocationState) -> tuple[Any, ...]:
    return (tuple(dict(t.data) for t in state._tables()), state.cursor, state.key_epoch,
            state.announced_kid, state.ignored_events, state.fresh_at, state.loaded)


def loaded(snapshot: dict[str, Any]) -> RevocationState:
    state = RevocationState()
    state.load_snapshot(snapshot, now=NOW)
    return state


@pytest.mark.parametrize("events", [mixed_events(), bulk_events(50)],
                         ids=["every kind", "bulk runs"])
def test_columns_load_the_same_state_as_events(events: list[RevocationEvent]) -> None:
    from_events, from_columns = loaded(as_events(events)), loaded(as_columns(events))
    assert shape(from_columns) == shape(from_events)
    for at in (NOW + 150, NOW + 700, NOW + 5000):  # and expire the same entries
        assert from_columns.prune(at) == from_events.prune(at)
        assert shape(from_columns) == shape(from_events)


def test_columns_in_any_order_take_the_entry_by_entry_path() -> None:
    events = mixed_events()
    snapshot = as_columns(events)
    columns = snapshot["columns"]
    kinds = [snapshot["kinds"][code] for code in columns["kind"]]
    order = sorted(range(len(events)), key=lambda i: kinds[i], reverse=True)  # stable
    assert [columns["kind"][i] for i in order] != sorted(columns["kind"])
    snapshot["columns"] = {name: [values[i] for i in order] for name, values in columns.items()}
    assert shape(loaded(snapshot)) == shape(loaded(as_events(events)))


def test_a_key_twice_in_a_bulk_run_keeps_the_longest_expiry_and_newest_version() -> None:
    events = [RevocationEvent("session.version_bumped", "s1", NOW, NOW + 900, {"sv": 2}, 1),
              RevocationEvent("session.version_bumped", "s1", NOW, NOW + 100, {"sv": 5}, 2),
              RevocationEvent("token.revoked", "j", NOW, NOW + 50, {}, 3),
              RevocationEvent("token.revoked", "j", NOW, NOW + 70, {}, 4)]
    state = loaded(as_columns(events))
    assert state._versions.data["s1"] == (5, NOW + 900)
    assert state._jtis.data["j"] == NOW + 70
    assert shape(state) == shape(loaded(as_events(events)))


def test_events_of_gives_back_every_event() -> None:
    events = mixed_events()
    back = sorted(events_of(as_columns(events)), key=lambda e: e["seq"])
    assert back == as_events(events)["events"]


def _break(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    snapshot = as_columns(bulk_events(3) + mixed_events())
    target: Any = snapshot
    for name in path[:-1]:
        target = target[name]
    if path[-1] == "append":
        target.append(value)
    else:
        target[int(path[-1]) if isinstance(target, list) else path[-1]] = value
    return snapshot


@pytest.mark.parametrize("snapshot", [
    _break(("format",), "columns/99"),
    _break(("kinds",), "token.revoked"),
    _break(("columns",), []),
    _break(("columns", "key", "append"), "extra"),
    _break(("columns", "kind", "0"), 99),
    _break(("columns", "kind", "0"), -1),
    _break(("columns", "kind", "0"), True),
    _break(("columns", "key", "0"), ""),
    _break(("columns", "key", "4"), 7),
    _break(("columns", "expires_at", "0"), "soon"),
    _break(("columns", "expires_at", "5"), True),
    _break(("columns", "expires_at", "1"), float("inf")),
    _break(("columns", "at", "2"), float("nan")),
    _break(("columns", "data", "0"), {"sv": "2"}),
    _break(("columns", "data", "0"), None),
    _break(("columns", "data", "4"), ["not", "an", "object"]),
], ids=lambda s: "")
def test_a_malformed_columns_snapshot_is_refused_whole(snapshot: dict[str, Any]) -> None:
    state = loaded(as_events(mixed_events()))
    before = copy.deepcopy(shape(state))
    with pytest.raises(InvalidEvent):
        state.load_snapshot(snapshot, now=NOW)
    assert shape(state) == before
