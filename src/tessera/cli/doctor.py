"""``tessera doctor [--json]``: check a deployment's settings, database, Redis, keys and
files, say what is wrong and how to fix it. Exit 0 when nothing failed (warnings
allowed), 1 when something did. Read-only: it creates, migrates and writes nothing.

Run it with the same environment (and working directory, for ``tessera.toml`` and the
embedded store) as ``tessera serve``: in a container, ``docker run … tessera doctor``;
in Kubernetes, ``kubectl exec deploy/tessera-identity -- tessera doctor``.
"""

from __future__ import annotations

import sys

import click

from tessera.cli._checks import Finding, diagnose
from tessera.cli._common import echo_json

__all__ = ["doctor"]

_LABEL = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object: {"ok": bool, "checks": [{check, status, message, fix}]}.')
def doctor(as_json: bool) -> None:
    """Check this deployment's settings, database, Redis, keys and file permissions."""
    findings = diagnose()
    failed = [f for f in findings if f.status == "fail"]
    warned = [f for f in findings if f.status == "warn"]
    if as_json:
        echo_json({"ok": not failed, "checks": [f.as_dict() for f in findings],
                   "summary": {"ok": len(findings) - len(failed) - len(warned),
                               "warn": len(warned), "fail": len(failed)}})
    else:
        _print(findings)
        click.echo(f"{len(failed)} problem(s), {len(warned)} warning(s)" if failed or warned
                   else "everything checked is fine")
    sys.exit(1 if failed else 0)


def _print(findings: list[Finding]) -> None:
    width = max(len(f.check) for f in findings)
    for finding in findings:
        click.echo(f"{_LABEL[finding.status]}  {finding.check:<{width}}  {finding.message}")
        if finding.fix and finding.status != "ok":
            click.echo(f"      {'':<{width}}  fix: {finding.fix}")
