"""``tessera`` (the console script) and ``python -m tessera``: the operator CLI.

Without the ``server`` extra it prints one line naming the extra and exits 1, never a
traceback (``tessera._extras``).
"""

from __future__ import annotations

import sys

from tessera._extras import MissingExtra

__all__ = ["main"]


def main() -> None:
    try:
        from tessera.cli.main import main as run
    except MissingExtra as exc:
        sys.exit(f"error: {exc}")
    run()


if __name__ == "__main__":
    main()
