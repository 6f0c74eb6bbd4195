"""The ``tessera`` command: one module per noun."""

__all__: list[str] = []
