"""The ``tessera`` command: one module per noun (needs the ``server`` extra)."""

from tessera import _extras

__all__: list[str] = []

_extras.require("server", "the tessera command")
