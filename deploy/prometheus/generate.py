"""Write the SLO rule files from one table: ``python deploy/prometheus/generate.py``.

Every SLO is a ratio of bad events to all events over a window, per ``job``. From the
table below this script writes

- ``rules/slo-recording.yml``: ``tessera:slo_errors:ratio_rate<W>{slo}`` for the alert
  windows (5m 30m 1h 2h 6h 1d 3d), ``tessera:slo_errors:ratio_rate30d`` (the error budget
  period, averaged from the 1h ratio) and ``tessera:slo_objective:ratio{slo}``;
- ``rules/slo-alerts.yml``: multi-window, multi-burn-rate alerts (Google SRE workbook,
  "Alerting on SLOs", table 5-8): page when 2 % of the 30-day budget burns in 1 h or 5 %
  in 6 h, ticket when 10 % burns in 1 d or all of it in 3 d (each long window confirmed by
  a short one, so an alert stops soon after the burn does).

``tests/integration/test_prometheus_rules.py`` fails when the files differ from what this
script writes, runs ``promtool check rules`` and the unit tests in ``tests/``, and checks
that every metric named here exists in the code. Thresholds: docs/metrics.md.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RUNBOOKS = "docs/runbooks"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
BUDGET_PERIOD = "30d"


@dataclass(frozen=True)
class Slo:
    name: str
    title: str
    """Alert name stem: ``Tessera<title>ErrorBudgetBurn``."""
    objective: float
    sli: str
    """What a good event is (the annotation)."""
    errors: str
    """PromQL of bad events per second over ``{w}``, ``sum by (job)``."""
    total: str
    """PromQL of all events per second over ``{w}``, ``sum by (job)``."""
    runbook: str


def _rate(selector: str) -> str:
    escaped = selector.replace("{", "{{").replace("}", "}}")
    return f"sum by (job) (rate({escaped}[{{w}}]))"


_UNAVAILABLE = 'reason=~"stale_state|keys_unavailable|introspection_unavailable"'
_REFRESH_BAD = 'outcome=~"invalid_grant|temporarily_unavailable|server_error"'

SLOS = (
    Slo("validation", "Validation", 0.999,
        "access decisions made (not refused for stale revocation state, missing keys or "
        "a failed introspection)",
        errors=_rate(f"tessera_verifier_decisions_total{{{_UNAVAILABLE}}}"),
        total=_rate("tessera_verifier_decisions_total"),
        runbook="redis-outage.md"),
    Slo("token-latency", "TokenLatency", 0.99,
        "successful token requests answered within 250 ms",
        errors=(_rate('tessera_token_request_seconds_count{outcome="ok"}') + " - "
                + _rate('tessera_token_request_seconds_bucket{outcome="ok",le="0.25"}')),
        total=_rate('tessera_token_request_seconds_count{outcome="ok"}'),
        runbook="session-store-outage.md"),
    Slo("revocation-propagation", "RevocationPropagation", 0.99,
        "revocations applied by a verifier within 5 s of their commit",
        errors=(_rate("tessera_verifier_revocation_propagation_seconds_count") + " - "
                + _rate('tessera_verifier_revocation_propagation_seconds_bucket'
                        '{le=~"5|5\\\\.0"}')),
        total=_rate("tessera_verifier_revocation_propagation_seconds_count"),
        runbook="redis-outage.md"),
    Slo("refresh", "Refresh", 0.99,
        "refresh_token grant requests that succeed (invalid_grant, temporarily_unavailable "
        "and server_error count as failures)",
        errors=_rate(f'tessera_token_request_seconds_count{{grant_type="refresh_token",'
                     f'{_REFRESH_BAD}}}'),
        total=_rate('tessera_token_request_seconds_count{grant_type="refresh_token"}'),
        runbook="README.md#tesserarefresherrorbudgetburn"),
    Slo("logout-completion", "LogoutCompletion", 0.99,
        "revocations applied by every live verifier within 5 s of their commit (what "
        "`tessera revoke --wait` reports)",
        errors=(_rate("tessera_logout_completion_seconds_count") + " - "
                + _rate('tessera_logout_completion_seconds_bucket{le=~"5|5\\\\.0"}')),
        total=_rate("tessera_logout_completion_seconds_count"),
        runbook="logout-completion.md"),
    Slo("store-availability", "StoreAvailability", 0.999,
        "token requests not refused because the session store failed",
        errors=_rate("tessera_store_errors_total"),
        total=_rate("tessera_token_request_seconds_count"),
        runbook="session-store-outage.md"),
)

BURNS = (
    # severity, long window, short window, burn rate, for
    ("page", "1h", "5m", 14.4, "2m"),
    ("page", "6h", "30m", 6.0, "2m"),
    ("ticket", "1d", "2h", 3.0, "15m"),
    ("ticket", "3d", "6h", 1.0, "15m"),
)


def _ratio(slo: Slo, window: str) -> str:
    errors, total = slo.errors.format(w=window), slo.total.format(w=window)
    # "or 0 * total": a job with traffic and no bad events has a ratio of 0, not no data
    return f"(\n  ({errors})\n  or\n  0 * {total}\n)\n/\n{total}\n"


def recording_rules() -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for slo in SLOS:
        for window in WINDOWS:
            rules.append({"record": f"tessera:slo_errors:ratio_rate{window}",
                          "expr": _ratio(slo, window), "labels": {"slo": slo.name}})
    period = [{"record": f"tessera:slo_errors:ratio_rate{BUDGET_PERIOD}",
               "expr": f'avg_over_time(tessera:slo_errors:ratio_rate1h{{slo="{slo.name}"}}'
                       f"[{BUDGET_PERIOD}])",
               "labels": {"slo": slo.name}} for slo in SLOS]
    objectives = [{"record": "tessera:slo_objective:ratio", "expr": f"vector({slo.objective})",
                   "labels": {"slo": slo.name}} for slo in SLOS]
    return {"groups": [
        {"name": "tessera-slo-sli", "interval": "30s", "rules": rules},
        {"name": "tessera-slo-budget", "interval": "5m", "rules": period + objectives},
    ]}


def _number(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def alert_rules() -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for slo in SLOS:
        budget = 1 - slo.objective
        for severity in ("page", "ticket"):
            pairs = [(long, short, burn, wait) for sev, long, short, burn, wait in BURNS
                     if sev == severity]
            clauses = []
            for long, short, burn, _ in pairs:
                limit = _number(burn * budget)
                clauses.append(
                    f'(\n  tessera:slo_errors:ratio_rate{long}{{slo="{slo.name}"}} > {limit}\n'
                    f'  and\n  tessera:slo_errors:ratio_rate{short}{{slo="{slo.name}"}} > '
                    f"{limit}\n)")
            windows = " or ".join(f"{burn:g}x over {long}/{short}" for long, short, burn, _
                                  in pairs)
            rules.append({
                "alert": f"Tessera{slo.title}ErrorBudgetBurn",
                "expr": "\nor\n".join(clauses) + "\n",
                "for": pairs[0][3],
                "labels": {"severity": severity, "slo": slo.name},
                "annotations": {
                    "summary": f"{{{{ $labels.job }}}}: {slo.name} SLO error budget burning "
                               + ("fast" if severity == "page" else "steadily"),
                    "description": (f"SLI: {slo.sli}. Objective {slo.objective:.1%} over "
                                    f"{BUDGET_PERIOD}; fires at burn rate {windows}."),
                    "runbook_url": f"{RUNBOOKS}/{slo.runbook}",
                },
            })
    return {"groups": [{"name": "tessera-slo-burn-rate", "rules": rules}]}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = ("# Generated by deploy/prometheus/generate.py from its SLO table; edit that, then\n"
          "# run `python deploy/prometheus/generate.py`. Checked by promtool in\n"
          "# tests/integration/test_prometheus_rules.py.\n")


def render() -> dict[str, str]:
    """File name (under rules/) → content."""
    return {name: HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)
            for name, doc in (("slo-recording.yml", recording_rules()),
                              ("slo-alerts.yml", alert_rules()))}


def main() -> int:
    for name, text in render().items():
        (HERE / "rules" / name).write_text(text)
        print(f"wrote {HERE / 'rules' / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
