"""Optional extras: is one installed, and one clear line when it is not.

``pip install tessera`` is the verifier SDK alone; the identity service, the CLI, the
console, the BFF and the edge gateway need the ``server`` extra. Their packages call
``require("server", "the identity service")`` before importing anything of their own, so a
missing extra is one ``MissingExtra`` (an ``ImportError``) naming it, not a
``ModuleNotFoundError`` for whichever dependency happened to be imported first.

What an extra holds is read from the installed distribution's metadata (pyproject.toml is
the only list). Run from a source tree without an installed distribution, nothing is
checked: imports fail as they would anyway.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import metadata
from typing import Final

__all__ = ["DISTRIBUTION", "MissingExtra", "missing", "require"]

DISTRIBUTION: Final = "tessera"

_REQUIREMENT: Final = re.compile(
    r"""^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[(?P<extras>[^\]]*)\])?[^;]*
        (?:;(?P<marker>.*))?$""", re.VERBOSE)
_EXTRA_MARKER: Final = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


class MissingExtra(ImportError):
    """A component was imported without the extra it needs installed."""

    def __init__(self, component: str, extra: str, absent: tuple[str, ...]) -> None:
        super().__init__(f"{component} needs the {extra!r} extra: "
                         f"pip install 'tessera[{extra}]'")
        self.component = component
        self.extra = extra
        self.absent = absent
        """The distributions of the extra that are not installed."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements() -> list[tuple[str, tuple[str, ...], str | None]]:
    """(distribution, its extras, the extra that asks for it) per requirement."""
    try:
        lines = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    parsed = []
    for line in lines:
        match = _REQUIREMENT.match(line)
        if match is None:
            continue
        extras = tuple(e.strip() for e in (match["extras"] or "").split(",") if e.strip())
        marker = _EXTRA_MARKER.search(match["marker"] or "")
        parsed.append((match["name"], extras, marker[1] if marker else None))
    return parsed


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


@cache
def missing(extra: str) -> tuple[str, ...]:
    """The distributions ``extra`` lists (extras it includes of this distribution too)
    that are not installed; ``()`` when all are, or when Tessera is not installed as a
    distribution (a bare source tree)."""
    requirements = _requirements()
    wanted: list[str] = []
    seen: set[str] = set()
    pending = [extra]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, extras, asked_by in requirements:
            if asked_by != current:
                continue
            if _normalise(name) == DISTRIBUTION:
                pending.extend(extras)
            elif name not in wanted:
                wanted.append(name)
    return tuple(name for name in wanted if not _installed(name))


def require(extra: str, component: str) -> None:
    """Raise ``MissingExtra`` unless every distribution of ``extra`` is installed."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(component, extra, absent)
