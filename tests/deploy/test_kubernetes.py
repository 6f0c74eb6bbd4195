"""deploy/kubernetes: valid against the Kubernetes schemas (pinned version, strict), and
what the schemas cannot say — restricted security contexts, resources, probes on
endpoints that exist, Secrets referenced never inlined, a PodDisruptionBudget per
Deployment, nginx configs that nginx accepts, policies the gateway loads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tessera.cli.main import cli
from tessera.gateway import parse_policy
from tests.deploy._support import DEPLOY, SNIPPETS, known_variables, load_all, nginx_check

KUBERNETES_VERSION = "1.33.0"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
SECRET_WORDS = ("SECRET", "PASSWORD", "ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL")
APP_ENDPOINTS = {"identity": {"/healthz", "/readyz"}, "gateway": {"/healthz", "/readyz"},
                 "orders-example": {"/healthz", "/readyz"}}


def resources() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in load_all(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [r for r in resources() if r["kind"] == kind]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in resources():
        if resource["kind"] in ("Deployment", "Job"):
            yield resource["metadata"]["name"], resource["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def image_kind(container: dict[str, Any]) -> str:
    return container["image"].rsplit("/", 1)[-1].split(":")[0]


def test_there_is_something_to_check() -> None:
    kinds = {r["kind"] for r in resources()}
    assert {"Namespace", "Deployment", "Service", "PodDisruptionBudget", "Job",
            "ConfigMap", "ServiceAccount"} <= kinds
    assert "Secret" not in kinds  # referenced, created by the operator


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_valid_against_the_kubernetes_schemas(path: Path) -> None:
    for resource in load_all(path):
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_every_pod_is_restricted() -> None:
    for name, pod in pod_specs():
        assert pod["automountServiceAccountToken"] is False, name
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers(pod):
            where = f"{name}/{container['name']}"
            own = container["securityContext"]
            assert own["allowPrivilegeEscalation"] is False, where
            assert own["readOnlyRootFilesystem"] is True, where
            assert own["capabilities"] == {"drop": ["ALL"]}, where
            uid = own.get("runAsUser", context.get("runAsUser"))
            assert isinstance(uid, int) and uid > 0, where
            limits = container["resources"]
            assert set(limits["requests"]) == set(limits["limits"]) == {"cpu", "memory"}, where
            tag = container["image"].rsplit(":", 1)[-1]
            assert tag != "latest" and tag[0].isdigit(), where


def test_secrets_are_referenced_never_inlined() -> None:
    for name, pod in pod_specs():
        for container in containers(pod):
            for variable in container.get("env", []):
                if any(word in variable["name"] for word in SECRET_WORDS):
                    assert "value" not in variable, (name, variable["name"])
                    assert "secretKeyRef" in variable["valueFrom"], (name, variable["name"])
    for config in of_kind("ConfigMap"):
        for key in config.get("data", {}):
            assert not any(word in key for word in SECRET_WORDS), key


def test_environment_variables_are_real_settings() -> None:
    known = known_variables()
    identity = of_kind("ConfigMap")
    values = {k for c in identity if c["metadata"]["name"] == "tessera-identity"
              for k in c["data"]}
    names = values | {v["name"] for _, pod in pod_specs() for c in containers(pod)
                      for v in c.get("env", [])}
    assert names and names <= known, names - known


def _probe_paths(container: dict[str, Any]) -> set[str]:
    paths = set()
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(kind)
        if probe is None:
            continue
        if "httpGet" in probe:
            paths.add(probe["httpGet"]["path"])
        else:
            url = probe["exec"]["command"][-1]
            paths.add("/" + url.split("/", 3)[3])
    return paths


def test_long_running_containers_have_probes_on_real_endpoints() -> None:
    for deployment in of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in containers(pod):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert "livenessProbe" in container and "readinessProbe" in container, where
            paths = _probe_paths(container)
            kind = image_kind(container)
            if kind == "nginx-unprivileged":
                assert paths == {"/_edge/healthz"}, where
            else:
                assert paths <= APP_ENDPOINTS[kind], where
                assert container["readinessProbe"] and "/readyz" in paths, where


def test_every_deployment_has_a_disruption_budget_and_a_matching_service() -> None:
    budgets = {b["metadata"]["name"]: b for b in of_kind("PodDisruptionBudget")}
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    for deployment in of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["replicas"] >= 2, name
        budget = budgets[name]["spec"]
        assert budget["minAvailable"] < deployment["spec"]["replicas"], name
        assert budget["selector"]["matchLabels"].items() <= labels.items(), name
        service = services[name]["spec"]
        assert service["selector"].items() <= labels.items(), name
        ports = {p["name"] for c in containers(deployment["spec"]["template"]["spec"])
                 for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["ports"]} <= ports, name


def _run_args(container: dict[str, Any]) -> list[str]:
    kind = image_kind(container)
    return ["gateway", *container["args"]] if kind == "gateway" else container["args"]


def test_tessera_containers_run_commands_the_cli_accepts() -> None:
    for _, pod in pod_specs():
        for container in containers(pod):
            if image_kind(container) not in ("identity", "gateway"):
                continue
            args = _run_args(container)
            with cli.make_context("tessera", list(args)) as ctx:
                command = cli.get_command(ctx, args[0])
                assert command is not None
                if hasattr(command, "commands"):  # a group: db upgrade
                    assert args[1] in command.commands  # type: ignore[attr-defined]
                else:
                    command.make_context(args[0], args[1:])
    (job,) = of_kind("Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]


def test_the_sidecar_decides_on_localhost_only() -> None:
    (orders,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "orders"]
    pod = orders["spec"]["template"]["spec"]
    (gateway,) = pod["initContainers"]
    assert gateway["restartPolicy"] == "Always"  # a native sidecar
    assert gateway["args"][:4] == ["--host", "127.0.0.1", "--port", "8090"]
    app = next(c for c in pod["containers"] if c["name"] == "orders")
    assert app["args"][:4] == ["--host", "127.0.0.1", "--port", "8001"]
    assert "ports" not in gateway and "ports" not in app  # only the proxy is exposed
    config = {c["metadata"]["name"]: c for c in of_kind("ConfigMap")}
    conf = config["orders-proxy-nginx"]["data"]["nginx.conf"]
    assert "server 127.0.0.1:8090;" in conf and "server 127.0.0.1:8001;" in conf


@pytest.mark.parametrize("name", ["tessera-edge-nginx", "orders-proxy-nginx"])
def test_nginx_configs_use_the_tested_snippets_and_pass_nginx_t(tmp_path: Path,
                                                                name: str) -> None:
    (config,) = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == name]
    data = config["data"]
    for snippet in SNIPPETS:
        assert data[snippet] == (DEPLOY / "nginx" / snippet).read_text(), (
            f"{name}: {snippet} differs from deploy/nginx/{snippet}; "
            "run deploy/kubernetes/sync_nginx_snippets.py")
    nginx_check(tmp_path, data["nginx.conf"], {s: data[s] for s in SNIPPETS})


@pytest.mark.parametrize("name", ["tessera-gateway", "orders-gateway-policy"])
def test_gateway_policies_load(name: str) -> None:
    import yaml

    (config,) = [c for c in of_kind("ConfigMap") if c["metadata"]["name"] == name]
    policy = parse_policy(yaml.safe_load(config["data"]["policy.yaml"]))
    assert policy.default == "deny" and policy.rules
