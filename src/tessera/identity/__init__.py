"""The identity service: composition root (``compose``), HTTP binding (``app``), login."""

__all__: list[str] = []
