"""Bounded JSON objects from other services' answers (the BFF's and the gateway's)."""

from __future__ import annotations

import pytest

from tessera.core.json_body import json_object


def test_an_object_within_the_bound_is_returned() -> None:
    assert json_object(b'{"access_token": "x", "n": 1}', max_bytes=64) == {
        "access_token": "x", "n": 1}


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2]", b'"text"', b"null",
                                     b'{"a": 1', b"\xff\xfe"])
def test_anything_but_a_json_object_is_nothing(content: bytes) -> None:
    assert json_object(content, max_bytes=64) is None


def test_a_body_past_the_bound_is_not_parsed() -> None:
    body = b'{"a": "' + b"x" * 100 + b'"}'
    assert json_object(body, max_bytes=len(body)) is not None
    assert json_object(body, max_bytes=len(body) - 1) is None
