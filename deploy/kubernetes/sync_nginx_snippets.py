"""Copy deploy/nginx's snippets into the ConfigMaps that embed them.

The cluster's nginx configs use the very snippets that tests/system/test_nginx.py runs
against a real nginx; a ConfigMap cannot include files from outside its directory, so
they are embedded, and tests/deploy/test_kubernetes.py fails when a copy drifts. Run
``python deploy/kubernetes/sync_nginx_snippets.py`` after changing a snippet.
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SNIPPETS = HERE.parent / "nginx"
_KEY = re.compile(r"^(?P<indent> *)(?P<name>tessera-[a-z-]+\.conf): \|[-+]?$")


def sync(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _KEY.match(lines[i])
        out.append(lines[i])
        i += 1
        if not match or not (SNIPPETS / match["name"]).exists():
            continue
        inner = " " * (len(match["indent"]) + 2)
        while i < len(lines) and (lines[i].startswith(inner) or not lines[i].strip()):
            i += 1
        body = (SNIPPETS / match["name"]).read_text().rstrip("\n").split("\n")
        out.extend(inner + line if line else "" for line in body)
    return "\n".join(out)


def main() -> None:
    for path in sorted(HERE.glob("*.yaml")):
        text = path.read_text()
        synced = sync(text)
        if synced != text:
            path.write_text(synced)
            print(f"updated {path.name}")


if __name__ == "__main__":
    main()
