"""The documents a maintainer reads are generated from, or checked against, the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_event_catalogue_in_docs_matches_the_code() -> None:
    result = subprocess.run([sys.executable, "tools/event_catalogue.py", "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_docs_do_not_point_outside_the_repository() -> None:
    for path in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *ROOT.glob("docs/**/*.md")]:
        text = path.read_text()
        assert "../shared" not in text and "shared/DESIGN" not in text \
            and "shared/STYLE" not in text, path
