"""Domain core: pure rules for sessions, refresh families, tokens and revocation.

Imports only the standard library; no I/O, no framework, no wall clock (see ``Clock``).
"""

from tessera.core.clock import Clock, FixedClock, SystemClock
from tessera.core.secrets import constant_time_equal, new_secret, token_hash

__all__ = [
    "Clock",
    "FixedClock",
    "SystemClock",
    "constant_time_equal",
    "new_secret",
    "token_hash",
]
