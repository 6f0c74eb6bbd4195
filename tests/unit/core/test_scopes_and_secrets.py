from __future__ import annotations

import pytest

from tessera.core.scopes import ScopeError, format_scope, narrow_scope, parse_scope
from tessera.core.secrets import (
    constant_time_equal,
    derive_secret,
    new_id,
    new_secret,
    token_hash,
)


def test_scope_parsing_follows_rfc6749_section_3_3() -> None:
    assert parse_scope("b a") == {"a", "b"}
    assert parse_scope(None) == frozenset() == parse_scope("")
    for bad in ("a  b", 'a"b', "a\\b", "caf\u00e9", " a"):
        with pytest.raises(ScopeError):
            parse_scope(bad)
    assert format_scope(frozenset({"b", "a"})) == "a b"


def test_narrowing_grants_a_subset_or_everything_allowed() -> None:
    allowed = frozenset({"a", "b"})
    assert narrow_scope(frozenset(), allowed) == allowed
    assert narrow_scope(frozenset({"a"}), allowed) == {"a"}
    with pytest.raises(ScopeError):
        narrow_scope(frozenset({"a", "c"}), allowed)


def test_secrets_are_random_and_hashed_deterministically() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and len(a) == 43
    assert token_hash(a) == token_hash(a) != token_hash(b)
    assert a not in token_hash(a)
    assert constant_time_equal(a, a) and not constant_time_equal(a, b)


def test_derived_secrets_depend_on_key_label_and_value() -> None:
    key = b"k" * 32
    base = derive_secret(key, "l", "v")
    assert base == derive_secret(key, "l", "v")
    assert base != derive_secret(b"x" * 32, "l", "v")
    assert base != derive_secret(key, "m", "v")
    assert base != derive_secret(key, "l", "w")


def test_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session, family, token or stream id goes to the CLI as an argument; one that
    started with '-' (1 in 64 of token_urlsafe's) was read as an option."""
    import secrets

    draws = iter(["-Tq3", "--x", "Ab-c"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda nbytes: next(draws))
    assert new_id() == "Ab-c"
    monkeypatch.undo()
    ids = [new_id() for _ in range(2000)]
    assert not any(i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids) and all(len(i) == 22 for i in ids)
