"""``tessera demo``: the whole system in one command, on the embedded defaults."""

from tessera._extras import require

require("server", "the demo")  # one clear line without the extra

__all__: list[str] = []
