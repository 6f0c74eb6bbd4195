"""``tessera gateway``: a broken policy or missing settings exit 2 with one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tessera.cli.main import cli

ENV = {"TESSERA_VERIFIER_ISSUER": "https://id.tessera.test",
       "TESSERA_VERIFIER_CLIENT_ID": "gateway", "TESSERA_VERIFIER_CLIENT_SECRET": "secret"}


def run(tmp_path: Path, policy: str, env: dict[str, str | None] | None = None,
        *extra: str) -> tuple[int, str]:
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    result = CliRunner().invoke(cli, ["gateway", "--policy", str(path), *extra],
                                env=ENV if env is None else env)
    return result.exit_code, result.output


def test_check_lists_the_routes(tmp_path: Path) -> None:
    code, output = run(tmp_path, "routes:\n  - match: {path: /a, methods: [GET]}\n", None,
                       "--check")
    assert code == 0, output
    assert "1 route(s), default deny" in output and "routes[0] GET /a" in output


@pytest.mark.parametrize(("policy", "message"), [
    ("routes:\n  - match: {path: /a}\n    scopes: orders:read\n",
     "policy.yaml: routes[0].scopes: must be a list of scopes, not a string"),
    ("routes:\n  - match: {path: /a\n", "policy.yaml: line 3, column 1: not valid YAML"),
    ("acr_levels: [a]\nroutes:\n  - match: {path: /a}\n    acr: b\n",
     "policy.yaml: routes[0].acr: 'b' is not one of acr_levels ['a']"),
])
def test_a_broken_policy_exits_2_with_the_message(tmp_path: Path, policy: str,
                                                  message: str) -> None:
    code, output = run(tmp_path, policy)
    assert code == 2
    assert output.startswith("error: ") and message in output
    assert "Traceback" not in output


def test_a_missing_policy_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["gateway", "--policy", str(tmp_path / "nope.yaml")],
                                env=ENV)
    assert result.exit_code == 2 and "cannot read the policy file" in result.output


def test_missing_settings_exit_2_naming_the_variable(tmp_path: Path) -> None:
    code, output = run(tmp_path, "routes: []\n", {"TESSERA_VERIFIER_ISSUER": None})
    assert code == 2 and "TESSERA_VERIFIER_ISSUER: Field required" in output
    env: dict[str, str | None] = {**ENV, "TESSERA_GATEWAY_EXCHANGE_TIMEOUT": "0"}
    code, output = run(tmp_path, "routes: []\n", env)
    assert code == 2 and "TESSERA_GATEWAY_EXCHANGE_TIMEOUT" in output


def test_exchange_routes_without_a_client_exit_2(tmp_path: Path) -> None:
    env: dict[str, str | None] = {"TESSERA_VERIFIER_ISSUER": "https://id",
                                  "TESSERA_VERIFIER_SOURCE": "none",
                                  "TESSERA_VERIFIER_CLIENT_ID": None,
                                  "TESSERA_VERIFIER_CLIENT_SECRET": None}
    code, output = run(tmp_path, "routes:\n  - match: {path: /a}\n    exchange_to: https://d\n",
                       env)
    assert code == 2 and "TESSERA_VERIFIER_CLIENT_ID" in output
