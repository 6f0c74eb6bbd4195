"""The identity service: composition root (``compose``), HTTP binding (``app``), login."""

from tessera._extras import require

require("server", "the identity service")  # one clear line without the extra

__all__: list[str] = []
