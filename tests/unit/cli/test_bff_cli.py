"""``tessera bff``: settings problems are one line each naming the variable (exit 2);
``--check`` summarises; ``--new-key`` prints a usable secret key."""

from __future__ import annotations

import base64

import pytest
from click.testing import CliRunner

from tessera.cli.main import cli
from tessera.keys import Sealer

ENV = {"TESSERA_BFF_PUBLIC_URL": "https://app.example",
       "TESSERA_BFF_ISSUER": "https://id.example", "TESSERA_BFF_CLIENT_ID": "bff",
       "TESSERA_BFF_CLIENT_SECRET": "not-shown-anywhere",
       "TESSERA_BFF_SECRET_KEY": Sealer.new_kek_b64(),
       "TESSERA_BFF_ROUTES": '{"orders": "https://orders.internal/v1"}'}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_check_summarises_the_configuration() -> None:
    result = CliRunner().invoke(cli, ["bff", "--check"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "https://app.example as client bff of https://id.example" in result.output
    assert "/bff/api/orders/ -> https://orders.internal/v1/" in result.output
    assert "memory (development only)" in result.output
    assert "revocations by introspection every 5s" in result.output
    assert "not-shown-anywhere" not in result.output


def test_missing_and_wrong_settings_name_their_variables() -> None:
    env = {**ENV, "TESSERA_BFF_PUBLIC_URL": "http://app.example",
           "TESSERA_BFF_SECRET_KEY": "short"}
    del env["TESSERA_BFF_CLIENT_ID"]
    result = CliRunner().invoke(cli, ["bff", "--check"], env=env)
    assert result.exit_code == 2
    assert "TESSERA_BFF_PUBLIC_URL: must be https" in result.output
    assert "TESSERA_BFF_CLIENT_ID" in result.output
    assert "TESSERA_BFF_SECRET_KEY" in result.output
    assert "Traceback" not in result.output and "not-shown-anywhere" not in result.output


def test_new_key_is_32_random_bytes() -> None:
    first = CliRunner().invoke(cli, ["bff", "--new-key"])
    second = CliRunner().invoke(cli, ["bff", "--new-key"])
    assert first.exit_code == 0 and first.output != second.output
    assert len(base64.urlsafe_b64decode(first.output.strip())) == 32
