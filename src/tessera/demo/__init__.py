"""``tessera demo``: the whole system in one command, on the embedded defaults."""

__all__: list[str] = []
