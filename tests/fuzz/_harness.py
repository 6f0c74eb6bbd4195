"""What every atheris harness shares: how it runs, and inputs built from fuzzed bytes.

A harness is a script ``fuzz_<parser>.py`` with a ``test_one_input(data: bytes)`` that
feeds the parser and lets only the parser's documented error types pass; anything else
escapes and atheris reports a crash (with the input saved under ``-artifact_prefix``).

    python tests/fuzz/fuzz_form_body.py CORPUS_DIR -runs=100000    # a longer local run

An empty corpus directory given on the command line is seeded with the harness's
``seeds`` first. ``tests/fuzz/test_harnesses.py`` runs each for a bounded time in CI.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import atheris
import orjson

__all__ = ["b64", "dumps", "fuzz_json", "jws", "run", "signed_variant"]


def run(test_one_input: Callable[[bytes], None], seeds: Iterable[bytes] = ()) -> None:
    """Seed empty corpus directories named in ``sys.argv``, then fuzz until libFuzzer's
    limits (``-runs``, ``-max_total_time``) end the process."""
    for arg in sys.argv[1:]:
        path = Path(arg)
        if not arg.startswith("-") and path.is_dir() and not any(path.iterdir()):
            for index, seed in enumerate(seeds):
                (path / f"seed-{index}").write_bytes(seed)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jws(header: bytes, payload: bytes, sign: Callable[[bytes], bytes]) -> str:
    """A compact JWS whose header and payload are exactly these bytes, validly signed:
    the fuzzer reaches the claim checks behind the signature."""
    signing_input = f"{b64(header)}.{b64(payload)}".encode("ascii")
    return f"{signing_input.decode('ascii')}.{b64(sign(signing_input))}"


def fuzz_json(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    """A JSON value of any type (nested up to three levels) from the fuzz data."""
    kind = fdp.ConsumeIntInRange(0, 8 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 12))
    if kind == 3:
        return fdp.ConsumeRegularFloat()
    if kind in (4, 5, 6):
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 40))
    if kind == 7:
        return [fuzz_json(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {fdp.ConsumeUnicodeNoSurrogates(8): fuzz_json(fdp, depth + 1)
            for _ in range(fdp.ConsumeIntInRange(0, 4))}


def dumps(value: Any) -> bytes:
    """JSON bytes; integers beyond 64 bits (which orjson refuses) as Python's json does."""
    try:
        return orjson.dumps(value)
    except TypeError:
        import json

        return json.dumps(value).encode()


def _set(target: dict[str, Any], name: str, value: Any) -> None:
    """``name`` or ``outer.inner`` (a member of a nested object) set to ``value``."""
    outer, _, inner = name.partition(".")
    if inner:
        nested = target.get(outer)
        target[outer] = {**(nested if isinstance(nested, dict) else {}), inner: value}
    else:
        target[name] = value


def signed_variant(fdp: atheris.FuzzedDataProvider, *, header: dict[str, Any],
                   claims: dict[str, Any], sign: Callable[[bytes], bytes],
                   header_members: Sequence[str], claim_names: Sequence[str] = ()) -> str:
    """A compact JWS to feed a parser, one of five kinds: any string; a valid one with a
    header member (``jwk.x`` for nested) set to any JSON value; validly signed arbitrary
    payload bytes; valid but for one claim dropped or set to any JSON value; that with a
    few characters spliced in anywhere."""
    mode = fdp.ConsumeIntInRange(0, 4)
    if mode == 0:
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 4096))
    if mode == 1:
        fuzzed_header = dict(header)
        _set(fuzzed_header, fdp.PickValueInList(list(header_members)), fuzz_json(fdp))
        return jws(dumps(fuzzed_header), dumps(claims), sign)
    if mode == 2:
        return jws(dumps(header), fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2048)), sign)
    fuzzed = dict(claims)
    name = fdp.PickValueInList([*claims, *claim_names, "other"])
    if "." not in name and fdp.ConsumeBool():
        fuzzed.pop(name, None)
    else:
        _set(fuzzed, name, fuzz_json(fdp))
    token = jws(dumps(header), dumps(fuzzed), sign)
    if mode == 4:
        at = fdp.ConsumeIntInRange(0, len(token))
        token = token[:at] + fdp.ConsumeUnicodeNoSurrogates(8) + token[at:]
    return token
