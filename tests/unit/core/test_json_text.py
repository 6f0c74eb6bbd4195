from __future__ import annotations

import json
import math
import random
import struct
from typing import Any

import pytest

from tessera.core.json_text import compact_json


def reference(value: Any, *, sort_keys: bool = False) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def floats(n: int) -> list[float]:
    rng = random.Random(15)
    found = [1e16, 1e-7, 1e-5, 1e-4, 9.999e-5, 1e21, 1e22, 2.0**63, -0.0, 0.0, 5e-324,
             1.7976931348623157e308, 1733000000.123456, 1e15, 9999999999999998.0, 123.0]
    while len(found) < n:
        bits = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        if math.isfinite(bits):
            found.append(bits)
        found.append(rng.random() * 10.0 ** rng.randint(-30, 30))
        found.append(float(rng.getrandbits(rng.randint(1, 80))))
    return found


def test_every_float_is_written_as_json_dumps_writes_it() -> None:
    for value in floats(60_000):
        document = {"x": value, "l": [value, -value]}
        assert compact_json(document) == reference(document), value


@pytest.mark.parametrize("value", [
    {"s": "\x7f"}, {"s": "\x00\x1f\n\t\"\\/"}, {"é": "ü"}, {"s": "\u2028\U0001f600"},
    {"big": 2**64}, {"top": 2**64 - 1}, {"neg": -(2**63) - 1}, {"low": -(2**63)},
    {"n": None}, {"s": "null"}, {"s": "1e5", "t": "0.00001"}, [True, False, None],
    {"b": [True, False], "a": {"z": 1, "y": [{}]}}, {"1": 1, "10": 2, "2": 3, "A": 4, "a": 5},
    {"int key": {1: "x"}}, ("tuple", 1), "plain", 7, {"aud": ("a", "b")},
])
@pytest.mark.parametrize("sort_keys", [False, True])
def test_the_edge_cases_are_written_as_json_dumps_writes_them(
        value: Any, sort_keys: bool) -> None:
    assert compact_json(value, sort_keys=sort_keys) == reference(value, sort_keys=sort_keys)


def test_key_order_is_kept_unless_sorted() -> None:
    assert compact_json({"b": 1, "a": 2}) == b'{"b":1,"a":2}'
    assert compact_json({"b": 1, "a": 2}, sort_keys=True) == b'{"a":2,"b":1}'


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"x": [float("-inf")]}])
def test_nan_and_infinities_are_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        compact_json(value)


def test_what_json_cannot_write_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(TypeError):
        compact_json({"when": object()})
