"""Fuzz the gateway's route policy file: ``load_policy`` (size, UTF-8, YAML with duplicate
keys refused, validation of every field and pattern) on arbitrary file contents, then
``Policy.match`` on a fuzzed host, method and path.

Documented error: ``PolicyError`` (the gateway exits with its message). The seeds are the
policy files shipped in ``deploy/``, which the fuzzer mutates.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["tessera"]):
    from tessera.gateway.policy import PolicyError, load_policy

from _harness import run

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [p.read_bytes() for p in sorted((ROOT / "deploy").glob("*/policy.yaml"))]
FILE = Path(tempfile.mkdtemp(prefix="tessera-fuzz-policy-")) / "policy.yaml"


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    host = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64))
    method = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 10))
    path = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 200))
    FILE.write_bytes(fdp.ConsumeBytes(fdp.remaining_bytes()))
    try:
        policy = load_policy(FILE)
    except PolicyError:
        return
    policy.match(host, method, path)
    policy.match("api.example", "GET", path)


if __name__ == "__main__":
    run(test_one_input, seeds=[b"\x0bapi.example\x03GET\x08/orders/" + s for s in SEEDS])
