"""``tessera demo``: start everything on the embedded defaults and walk the story."""

from __future__ import annotations

import asyncio
import sys

import click

__all__ = ["demo"]


@click.command()
@click.option("--keep", is_flag=True, help="Keep the temporary data and logs.")
def demo(keep: bool) -> None:
    """Log in, call two services through the gateway, queue a job, log out, and watch
    every party reject the old token (with the measured propagation time)."""
    from tessera.demo.story import run_demo

    sys.exit(asyncio.run(run_demo(keep=keep)))
