from __future__ import annotations

from tessera.core.audit_chain import GENESIS, chain_link, find_breaks


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
