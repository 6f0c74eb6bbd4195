from __future__ import annotations

import json
from typing import Any

import pytest

from tessera.core.audit_chain import GENESIS, canonical, chain_link, find_breaks, stored_fields


def chain(n: int) -> list[tuple[int, str, float, dict[str, object], str | None]]:
    rows: list[tuple[int, str, float, dict[str, object], str | None]] = []
    previous = GENESIS
    for i in range(1, n + 1):
        fields: dict[str, object] = {"n": i, "nested": {"b": 1, "a": [1.5, "x"]}}
        previous = chain_link(previous, "token.issued", 1000.0 + i, fields)
        rows.append((i, "token.issued", 1000.0 + i, fields, previous))
    return rows


def test_an_untouched_chain_verifies_and_reports_its_head() -> None:
    rows = chain(5)
    assert find_breaks(rows) == ([], rows[-1][4])


def test_field_order_does_not_matter_but_content_does() -> None:
    assert chain_link(GENESIS, "e", 1.0, {"a": 1, "b": 2}) == \
        chain_link(GENESIS, "e", 1.0, {"b": 2, "a": 1})
    assert chain_link(GENESIS, "e", 1.0, {"a": 1}) != chain_link(GENESIS, "e", 1.0, {"a": 2})
    assert chain_link(GENESIS, "e", 1.0, {}) != chain_link("1" * 64, "e", 1.0, {})


def test_an_edited_row_is_found() -> None:
    rows = chain(5)
    i, event, at, fields, link = rows[2]
    rows[2] = (i, event, at, {**fields, "n": 99}, link)
    breaks, _ = find_breaks(rows)
    assert [b.row_id for b in breaks] == [3]


def test_a_deleted_row_breaks_the_next_one() -> None:
    rows = chain(5)
    del rows[1]
    breaks, _ = find_breaks(rows)
    assert [b.row_id for b in breaks] == [3]


def test_legacy_unchained_rows_are_allowed_only_before_the_chain() -> None:
    rows = chain(2)
    legacy = [(0, "old", 1.0, {}, None)]
    assert find_breaks(legacy + rows)[0] == []
    breaks, _ = find_breaks([*rows, (9, "sneaked", 2.0, {}, None)])
    assert [b.row_id for b in breaks] == [9]


def _reference(event: str, at: float, fields: dict[str, Any]) -> bytes:
    """The canonical form as defined: json.dumps, sorted keys, no spaces, ASCII, no NaN."""
    return json.dumps([event, at, fields], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False).encode("ascii")


@pytest.mark.parametrize("fields", [
    {"s": "\x7f"}, {"s": "\x00\x1f\n\t\"\\/"}, {"é": "ü"}, {"s": "\u2028\U0001f600"},
    {"big": 2**64}, {"neg": -(2**63) - 1}, {"n": None}, {"s": "null"}, {"s": "1e5"},
    {"b": [True, False], "a": {"z": 1, "y": [{}]}}, {"1": 1, "10": 2, "2": 3, "A": 4, "a": 5},
    {"int_key_is_refused_by_orjson": {1: "x"}},
])
def test_canonical_bytes_are_json_dumps_bytes_for_the_edge_cases(
        fields: dict[str, Any]) -> None:
    assert canonical("token.issued", 1733000000.5, fields) == \
        _reference("token.issued", 1733000000.5, fields)


def test_canonical_refuses_nan_as_json_dumps_does() -> None:
    with pytest.raises(ValueError):
        canonical("e", 1.0, {"x": float("nan")})


@pytest.mark.parametrize("fields", [
    {"a": 1.5e-7, "b": "é", "c": [1, None]}, {"big": 2**70}, {}, {"x": 1733000000.25}])
def test_stored_fields_read_back_give_the_same_link(fields: dict[str, Any]) -> None:
    again = json.loads(stored_fields(fields))
    assert again == fields
    assert chain_link(GENESIS, "e", 1.0, again) == chain_link(GENESIS, "e", 1.0, fields)
