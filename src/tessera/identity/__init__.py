"""The identity service: composition root (``compose``), HTTP binding (``app``), login."""

from tessera import _extras

_extras.require("server", "the identity service")  # one clear line without the extra

__all__: list[str] = []
