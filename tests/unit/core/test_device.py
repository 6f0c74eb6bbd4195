"""User codes (RFC 8628 §6.1): alphabet, length, display form, normalisation."""

from __future__ import annotations

import pytest

from tessera.core.device import (
    USER_CODE_ALPHABET,
    format_user_code,
    new_user_code,
    normalise_user_code,
)


def test_user_codes_are_eight_base20_consonants_shown_with_a_dash() -> None:
    codes = {new_user_code() for _ in range(200)}
    assert len(codes) > 195
    for code in codes:
        assert len(code) == 8 and set(code) <= set(USER_CODE_ALPHABET)
    assert len(USER_CODE_ALPHABET) == 20 and not set("AEIOUY01") & set(USER_CODE_ALPHABET)
    assert format_user_code("BCDFGHJK") == "BCDF-GHJK"


@pytest.mark.parametrize(("typed", "stored"), [
    ("BCDF-GHJK", "BCDFGHJK"), ("bcdf-ghjk", "BCDFGHJK"), ("bcdf ghjk", "BCDFGHJK"),
    ("BCDFGHJK", "BCDFGHJK"), (" BC-DF-GH-JK ", "BCDFGHJK")])
def test_normalisation(typed: str, stored: str) -> None:
    assert normalise_user_code(typed) == stored


@pytest.mark.parametrize("typed", [None, "", "BCDF-GHJ", "BCDF-GHJKL", "ABCD-EFGH",
                                   "BCDF-GHJ1", "B" * 40, "BCDF_GHJK"])
def test_not_a_user_code(typed: str | None) -> None:
    assert normalise_user_code(typed) is None
