"""``tessera tenants set-session-policy|session-policy`` and ``clients create --grant
device_code`` against a real SQLite file, in-process through click's runner (issue 13)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_trust_cli import _quick, data, ok, run

__all__ = ["_quick", "data"]


def test_set_session_policy_prints_the_tenant_and_effective_policy(data: Path) -> None:
    ok(run(data, "tenants", "create", "acme"))
    shown = ok(run(data, "tenants", "session-policy", "acme"))
    assert shown["effective"] == {"idle_timeout": 0.0, "absolute_timeout": 0.0,
                                  "max_sessions": 0, "on_limit": "refuse"}
    changed = ok(run(data, "tenants", "set-session-policy", "--tenant", "acme",
                     "--idle-timeout", "30m", "--absolute-timeout", "12h",
                     "--max-sessions", "5", "--on-limit", "end_oldest"))
    assert {k: changed[k] for k in ("tenant_id", "idle_timeout", "absolute_timeout",
                                    "max_sessions", "on_limit")} == {
        "tenant_id": "acme", "idle_timeout": 1800.0, "absolute_timeout": 43200.0,
        "max_sessions": 5, "on_limit": "end_oldest"}
    kept = ok(run(data, "tenants", "set-session-policy", "--tenant", "acme",
                  "--max-sessions", "default"))
    assert (kept["idle_timeout"], kept["max_sessions"]) == (1800.0, None)
    assert kept["effective"]["max_sessions"] == 0


def test_bad_session_policy_input_is_one_error_line(data: Path) -> None:
    ok(run(data, "tenants", "create", "acme"))
    for args in (("--idle-timeout", "soon"), ("--max-sessions", "-3"),
                 ("--absolute-timeout", "2y")):
        result = run(data, "tenants", "set-session-policy", "--tenant", "acme", *args)
        assert result.exit_code == 2 and result.stderr.startswith("error: "), result.output
    bad_choice = run(data, "tenants", "set-session-policy", "--tenant", "acme",
                     "--on-limit", "panic")
    assert bad_choice.exit_code == 2
    unknown = run(data, "tenants", "set-session-policy", "--tenant", "nope",
                  "--idle-timeout", "1h")
    assert unknown.exit_code == 2 and "no tenant" in unknown.stderr


def test_clients_opt_in_to_the_device_grant_by_name_or_alias(data: Path) -> None:
    full = ok(run(data, "clients", "create", "--name", "tv", "--public", "--grant",
                  "urn:ietf:params:oauth:grant-type:device_code", "--grant", "refresh_token"))
    alias = ok(run(data, "clients", "create", "--name", "cli", "--public", "--grant",
                   "device_code"))
    assert "urn:ietf:params:oauth:grant-type:device_code" in full["grant_types"]
    assert alias["grant_types"] == ["urn:ietf:params:oauth:grant-type:device_code"]
