"""Container health check: exit 0 when URL answers 2xx within two seconds, else 1.

Used by the Dockerfile's HEALTHCHECK and the Kubernetes exec probes of containers that
listen on localhost only (the per-pod gateway sidecar). Standard library only: the
runtime image has no curl.

    python /opt/tessera/healthcheck.py http://127.0.0.1:8000/readyz
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT = 2.0


def healthy(url: str, timeout: float = TIMEOUT) -> bool:
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit(f"healthcheck: {url!r} is not a loopback http URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: healthcheck.py URL", file=sys.stderr)
        return 2
    return 0 if healthy(argv[1]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
