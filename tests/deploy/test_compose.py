"""deploy/compose/compose.yaml: valid against the Compose specification (the schema
check-jsonschema vendors), and a coherent stack — images built from real Dockerfile
targets, dependencies that exist and wait for health, secrets only from .env, only
loopback ports published, Tessera containers locked down, an nginx config nginx accepts.
Docker cannot run here; this is what can be checked without it."""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tessera.gateway import parse_policy
from tests.deploy._support import DEPLOY, SNIPPETS, known_variables, nginx_check
from tests.deploy.test_dockerfile import stages

COMPOSE = DEPLOY / "compose" / "compose.yaml"
TESSERA = {"migrate", "identity", "gateway", "orders"}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def test_valid_against_the_compose_specification() -> None:
    schema_file = (importlib.resources.files("check_jsonschema") / "builtin_schemas"
                   / "vendor" / "compose-spec.json")
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_stack_has_every_part() -> None:
    assert set(services()) == {"postgres", "redis", "migrate", "identity", "gateway",
                               "orders", "edge"}
    assert {name for name, s in services().items() if "edge" in s.get("profiles", [])} \
        == {"gateway", "orders", "edge"}


def test_images_are_built_from_real_targets_or_pinned() -> None:
    targets = set(stages())
    for name, service in services().items():
        if "build" in service:
            assert (COMPOSE.parent / service["build"]["context"] / "Dockerfile").exists()
            assert service["build"]["target"] in targets, name
        else:
            tag = service["image"].rsplit(":", 1)[1]
            assert re.match(r"\d+\.\d+(\.\d+)?-", tag), name  # exact, never latest


def test_dependencies_exist_and_wait_for_health_or_completion() -> None:
    every = services()
    for name, service in every.items():
        for needed, how in service.get("depends_on", {}).items():
            assert needed in every, (name, needed)
            condition = how["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in every[needed], needed
            else:
                assert (condition, needed) == ("service_completed_successfully", "migrate")
    assert every["identity"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"
    assert every["migrate"]["command"] == ["db", "upgrade"]


def test_tessera_healthchecks_ask_readiness_on_the_served_port() -> None:
    for name in TESSERA - {"migrate"}:
        service = services()[name]
        port = service["command"][service["command"].index("--port") + 1]
        test = service["healthcheck"]["test"]
        assert test[-1] == f"http://127.0.0.1:{port}/readyz", name


def test_secrets_come_from_the_environment_never_the_file() -> None:
    text = COMPOSE.read_text()
    for name, service in services().items():
        for variable, value in (service.get("environment") or {}).items():
            if any(w in variable for w in ("PASSWORD", "SECRET", "ENCRYPTION_KEY")):
                assert re.fullmatch(r"\$\{[A-Z_]+:[?-][^}]*\}", str(value)), (name, variable)
    assert "${POSTGRES_PASSWORD:?" in text and "${TESSERA_KEK:?" in text
    database = services()["identity"]["environment"]["TESSERA_DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in database


def test_environment_variables_are_real_settings() -> None:
    names = {v for name in TESSERA for v in services()[name]["environment"]}
    assert names <= known_variables(), names - known_variables()


def test_only_loopback_ports_are_published() -> None:
    published = {name: s["ports"] for name, s in services().items() if "ports" in s}
    assert set(published) == {"identity", "edge"}
    for ports in published.values():
        assert all(str(p).startswith("127.0.0.1:") for p in ports)


@pytest.mark.parametrize("name", sorted(TESSERA | {"edge"}))
def test_containers_are_locked_down(name: str) -> None:
    service = services()[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]


def test_mounted_files_exist_and_the_edge_config_passes_nginx_t(tmp_path: Path) -> None:
    snippets: dict[str, str] = {}
    config = ""
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                path = (COMPOSE.parent / source).resolve()
                assert path.is_file(), (name, source)
                if path.name in SNIPPETS:
                    snippets[path.name] = path.read_text()
                elif path.name == "nginx.conf":
                    config = path.read_text()
    assert set(snippets) == set(SNIPPETS) and "server gateway:8080;" in config
    nginx_check(tmp_path, config, snippets)
    policy = yaml.safe_load((COMPOSE.parent / "policy.yaml").read_text())
    assert parse_policy(policy).default == "deny"
