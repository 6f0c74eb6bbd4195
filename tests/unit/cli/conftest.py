"""CLI tests run in an empty working directory (no tessera.toml; the embedded store under
``./data``) with no ``TESSERA_*`` variable inherited from the caller."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("TESSERA_"):
            monkeypatch.delenv(name)
    return tmp_path
