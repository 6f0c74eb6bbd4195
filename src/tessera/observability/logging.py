"""Process logging for Tessera's services: one line per record, audit lines as JSON.

Called in every worker process (uvicorn workers are spawned, so configuration made in the
parent does not reach them)."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging(level: int = logging.INFO) -> None:
    """Send the ``tessera`` loggers to stderr once per process (idempotent)."""
    logger = logging.getLogger("tessera")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
