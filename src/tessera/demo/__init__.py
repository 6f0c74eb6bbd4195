"""``tessera demo``: the whole system in one command, on the embedded defaults."""

from tessera import _extras

_extras.require("server", "the demo")  # one clear line without the extra

__all__: list[str] = []
