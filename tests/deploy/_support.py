"""Shared by the deployment-artifact tests: paths, YAML loading, ``nginx -t`` of a
config meant for a cluster (service names and /tmp rewritten for this machine)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tessera.cli._checks import setting_variables
from tessera.settings import Settings
from tessera.verifier.settings import VerifierSettings
from tests.system._nginx import ensure_nginx

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SNIPPETS = ("tessera-http.conf", "tessera-locations.conf", "tessera-protect.conf")


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def known_variables() -> set[str]:
    """Every environment variable ``Settings`` and ``VerifierSettings`` read."""
    identity, _ = setting_variables(Settings, "TESSERA_")
    verifier = {f"TESSERA_VERIFIER_{name.upper()}" for name in VerifierSettings.model_fields}
    return identity | verifier


def nginx_check(tmp_path: Path, config: str, snippets: dict[str, str]) -> None:
    """``nginx -t`` on ``config`` with its snippets beside it; host names become
    127.0.0.1 (they only resolve in the cluster) and /tmp a private prefix."""
    binary = ensure_nginx()
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    config = re.sub(r"server [a-z][a-z0-9.-]*:(\d+);", r"server 127.0.0.1:\1;", config)
    config = config.replace(" /tmp/", f" {prefix}/tmp/").replace("/dev/stdout", "off")
    config = config.replace("access_log off tessera;", "access_log off;")
    (prefix / "nginx.conf").write_text(config)
    for name, text in snippets.items():
        (prefix / name).write_text(text)
    done = subprocess.run([binary, "-t", "-q", "-p", str(prefix), "-c",
                           str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
