"""`tessera demo` on the embedded defaults: the whole story, and nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_demo_walks_the_story_and_leaves_no_process(tmp_path: object) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    run = subprocess.run([sys.executable, "-m", "tessera.cli.main", "demo"], env=env,
                         capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "gateway: 200, exchanged (RFC 8693) → aud=https://orders.demo" in out
    assert "consumer: processed" in out
    refusals = re.findall(r"refused after +([\d.]+) ms", out)
    assert len(refusals) == 4, out
    assert all(float(ms) < 10_000 for ms in refusals)
    heard = re.search(r"relying party: back-channel logout token .* after +([\d.]+) ms", out)
    assert heard and float(heard.group(1)) < 10_000, out
    assert re.search(r"SSF receiver: session-revoked SET after +[\d.]+ ms", out), out
    assert "done: all processes stopped." in out
    tmp_dir = re.search(r"data and logs in (\S+)", out)
    assert tmp_dir and not os.path.exists(tmp_dir.group(1))
    leftovers = subprocess.run(["pgrep", "-f", tmp_dir.group(1)], capture_output=True,
                               text=True)
    assert leftovers.stdout.strip() == ""
