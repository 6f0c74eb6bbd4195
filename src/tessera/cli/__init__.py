"""The ``tessera`` command: one module per noun (needs the ``server`` extra)."""

from tessera._extras import require

__all__: list[str] = []

require("server", "the tessera command")
