"""The shipped SLOs, alerts and dashboard (deploy/prometheus, deploy/grafana).

- ``promtool check rules`` / ``check config`` and ``promtool test rules`` on the unit tests
  in deploy/prometheus/tests (synthetic series: burn-rate alerts fire, and do not fire).
  promtool comes from Debian's ``prometheus`` package; it is installed here when missing
  and we are root. With ``CI=true`` a failed install fails the test, otherwise it skips.
- In Python: the SLO rule files are what ``generate.py`` writes; every metric named by a
  rule or a dashboard query is exported by the code or recorded by a rule; every alert
  links a runbook that exists; docs/metrics.md lists every metric.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from tessera.core.clock import FixedClock
from tessera.gateway.metrics import GatewayMetrics
from tessera.identity.compose import Identity
from tessera.observability.metrics import IdentityMetrics
from tessera.store.ports import StoreError
from tessera.verifier.metrics import VerifierMetrics
from tessera.verifier.revocation import RevocationState
from tests.conftest import METRICS_AUTH
from tests.support import TesseraDriver

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yaml"))
DASHBOARD = ROOT / "deploy" / "grafana" / "tessera.json"
BUILTIN_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}


# -- promtool -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        install = subprocess.run(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -qq --no-install-recommends prometheus",
            shell=True, capture_output=True, text=True, timeout=900)
        found = shutil.which("promtool")
        if found:
            return found
        reason = f"apt-get install prometheus failed: {install.stderr[-1500:]}"
    else:
        reason = "promtool is missing and cannot be installed (needs root and apt-get)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_promtool_accepts_every_rule_file_and_the_example_config(promtool: str) -> None:
    assert {p.name for p in RULE_FILES} >= {"slo-recording.yml", "slo-alerts.yml",
                                             "alerts.yml", "dashboard-recording.yml"}
    for path in RULE_FILES:
        checked = run(promtool, "check", "rules", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    config = run(promtool, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    listed = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]
    assert sorted(Path(p).name for p in listed) == sorted(p.name for p in RULE_FILES)


def test_promtool_unit_tests_fire_and_hold_the_alerts(promtool: str) -> None:
    assert {p.name for p in UNIT_TESTS} >= {"slo-burn-rate.yaml", "alerts.yaml"}
    tested = run(promtool, "test", "rules", *map(str, UNIT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(UNIT_TESTS), tested.stdout


def test_every_alert_has_a_unit_test() -> None:
    tested = "\n".join(p.read_text() for p in UNIT_TESTS)
    for name in {rule["alert"] for rule in _rules() if "alert" in rule}:
        assert f"alertname: {name}\n" in tested, f"no promtool test exercises {name}"


# -- the SLO table ----------------------------------------------------------------------------


@cache
def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tessera_slo_generate",
                                                  PROMETHEUS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_slo_rule_files_are_what_generate_py_writes() -> None:
    for name, text in _generator().render().items():
        assert (PROMETHEUS / "rules" / name).read_text() == text, (
            f"rules/{name} is stale: run `python deploy/prometheus/generate.py`")


def test_each_slo_has_every_window_and_a_page_and_a_ticket_alert() -> None:
    gen = _generator()
    recorded = {(r["record"], r["labels"]["slo"]) for r in _rules() if "record" in r
                and "slo" in r.get("labels", {})}
    alerts = {(r["labels"]["slo"], r["labels"]["severity"]) for r in _rules()
              if "alert" in r and "slo" in r["labels"]}
    for slo in gen.SLOS:
        for window in (*gen.WINDOWS, gen.BUDGET_PERIOD):
            assert (f"tessera:slo_errors:ratio_rate{window}", slo.name) in recorded
        assert ("tessera:slo_objective:ratio", slo.name) in recorded
        assert {(slo.name, "page"), (slo.name, "ticket")} <= alerts
    assert {s.name for s in gen.SLOS} == {"validation", "token-latency",
                                          "revocation-propagation", "refresh",
                                          "logout-completion", "store-availability"}


# -- names: every series a rule or panel reads exists ------------------------------------------


def _rules() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


def _names(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum", "created")}
        else:
            names.add(family.name)
    return names


def _registries() -> list[CollectorRegistry]:
    verifier = VerifierMetrics()
    verifier.watch(RevocationState(), clock=FixedClock(0.0))
    exchanger: Any = SimpleNamespace(hits=0, misses=0, failures=0, cache={})
    gateway = GatewayMetrics(CollectorRegistry(), exchanger)
    return [IdentityMetrics().registry, verifier.registry, gateway.registry]


@cache
def exported_metrics() -> frozenset[str]:
    """Every series name the code exports, read from the real collectors."""
    return frozenset(name for registry in _registries() for name in _names(registry))


_BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_MATCHER = re.compile(r'(\w+)\s*(?:=~|!~|!=|=)\s*"')


def labels_in(expr: str) -> set[str]:
    """Label names a PromQL expression matches on or aggregates by."""
    found = {name for block in re.findall(r"\{([^{}]*)\}", expr)
             for name in _MATCHER.findall(block)}
    return found | {name.strip() for group in _BY.findall(expr)
                    for name in group.split(",") if name.strip()}


@cache
def known_labels() -> frozenset[str]:
    """Labels the code's metrics carry (their declared label names), labels rules add,
    and Prometheus's own (target and alert labels, histogram buckets)."""
    names = {"job", "instance", "le", "alertname", "alertstate", "severity"}
    for registry in _registries():
        for collector in registry._collector_to_names:  # the declared label names
            names |= set(getattr(collector, "_labelnames", ()))
    for rule in _rules():
        names |= set(rule.get("labels", {}))
    return frozenset(names)


def recorded_series() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "offset", "bool", "inf", "nan", "atan2"}


def series_in(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (strings, label matchers, ranges, label
    lists, functions and Grafana variables left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    text = re.sub(r"\{[^{}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def test_the_name_extractor_reads_promql() -> None:
    expr = ('sum by (job, le) (rate(a_total{reason=~"x|y", job=~"$job"}[$__rate_interval]))'
            ' / on (slo) group_left () (1 - b:c:ratio) > bool 1e3 or vector(0)')
    assert series_in(expr) == {"a_total", "b:c:ratio"}


def _dashboard_exprs() -> Iterator[str]:
    board = json.loads(DASHBOARD.read_text())
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            yield annotation["expr"]
    for var in board["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query["query"])
            assert found, f"unexpected variable query {query}"
            yield found.group(1)


def test_rules_read_only_series_the_code_exports_or_rules_record() -> None:
    known = exported_metrics() | recorded_series() | BUILTIN_SERIES
    assert "tessera_store_errors_total" in known
    for rule in _rules():
        unknown = series_in(rule["expr"]) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')}: {sorted(unknown)}"


def test_the_dashboard_parses_and_reads_only_known_series() -> None:
    known = exported_metrics() | recorded_series() | BUILTIN_SERIES
    exprs = list(_dashboard_exprs())
    assert len(exprs) > 20
    for expr in exprs:
        unknown = series_in(expr) - known
        assert not unknown, f"dashboard query {expr!r} reads unknown {sorted(unknown)}"


def test_the_dashboard_and_rules_use_only_labels_the_metrics_carry() -> None:
    """A renamed label (``grant`` → ``grant_type``) must not leave a panel or a rule
    filtering on a label that no longer exists: such a query is silently empty."""
    known = known_labels()
    assert {"grant_type", "outcome", "reason", "slo"} <= known
    for rule in _rules():
        unknown = labels_in(rule["expr"]) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')}: {sorted(unknown)}"
    board = json.loads(DASHBOARD.read_text())
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            used = labels_in(target["expr"]) | set(
                re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            unknown = used - known
            assert not unknown, f"panel {panel.get('title')!r}: {sorted(unknown)}"


def test_the_dashboard_has_executive_on_call_and_debug_rows() -> None:
    board = json.loads(DASHBOARD.read_text())
    rows = [p["title"].split(":")[0] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Executive", "On-call", "Debug"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
            assert [t["refId"] for t in panel["targets"]] == [
                chr(65 + i) for i in range(len(panel["targets"]))]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    used = " ".join(_dashboard_exprs())
    for series in ("tessera:slo_errors:ratio_rate30d", "tessera:slo_objective:ratio",
                   "tessera:slo_errors:ratio_rate1h", "tessera_verifier_revocation_lag_seconds",
                   "tessera_store_errors_total"):
        assert series in used, f"the dashboard does not show {series}"
    assert board["uid"] == "tessera-overview" and board["schemaVersion"] >= 36


# -- runbooks and docs --------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_a_runbook_that_exists() -> None:
    for rule in _rules():
        if "alert" not in rule:
            continue
        link = rule["annotations"]["runbook_url"]
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.is_file(), f"{rule['alert']}: {link}"
        if anchor:
            headings = {_slug(line.lstrip("#")) for line in target.read_text().splitlines()
                        if line.startswith("#")}
            assert anchor in headings, f"{rule['alert']}: no heading #{anchor} in {path}"


def test_runbooks_name_real_commands_and_metrics() -> None:
    runbooks = {p.name: p.read_text() for p in (ROOT / "docs" / "runbooks").glob("*.md")}
    assert {"key-rotation.md", "bulk-revoke.md", "session-store-outage.md",
            "redis-outage.md"} <= set(runbooks)
    known = exported_metrics() | recorded_series()
    commands = {"tessera keys rotate", "tessera keys ls", "tessera revoke",
                "tessera sessions ls", "tessera audit trace", "tessera audit verify"}
    for name, text in runbooks.items():
        if name == "README.md":
            continue
        named = set(re.findall(r"\b(tessera_[a-z_]+|tessera:\w+:\w+)", text))
        assert named, f"{name} names no metric"
        assert named <= known, f"{name}: unknown {sorted(named - known)}"
        assert "tessera " in text and "```" in text, f"{name} shows no command"
    every = "\n".join(runbooks.values())
    for command in commands:
        assert command in every, command


def test_docs_metrics_lists_every_metric_and_rule() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    bases = {re.sub(r"_(total|created|bucket|count|sum)$", "", n) for n in exported_metrics()}
    missing = sorted(b for b in bases if b not in text)
    assert not missing, f"docs/metrics.md does not mention {missing}"
    assert not sorted(r for r in recorded_series() if r not in text)


# -- the store availability SLI, end to end -----------------------------------------------------


async def test_a_store_failure_at_the_token_endpoint_is_counted(
        tessera: TesseraDriver, identity: Identity, http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    svc = await tessera.client(grants=("client_credentials", "refresh_token"))
    assert (await tessera.token(svc, grant_type="client_credentials")).status_code == 200

    def store_down(*_: Any, **__: Any) -> Any:
        raise StoreError("connection refused")

    monkeypatch.setattr(identity.store, "unit_of_work", store_down)
    refused = await tessera.token(svc, grant_type="refresh_token", refresh_token="x" * 43)
    assert refused.status_code == 503
    assert refused.json()["error"] == "temporarily_unavailable"
    monkeypatch.undo()
    bad = await tessera.token(svc, grant_type="nope")
    assert bad.status_code == 400  # other errors are not store errors
    metrics = (await http.get("/metrics", headers=METRICS_AUTH)).text
    assert 'tessera_store_errors_total{endpoint="token"} 1.0' in metrics
    assert ('tessera_token_request_seconds_count{grant_type="refresh_token",'
            'outcome="temporarily_unavailable"} 1.0') in metrics
