"""Throttles (DESIGN §9: rate limits on login and token endpoints): how many attempts, or
failures, one key may make in a moving window.

The port. ``tessera.identity.throttles`` implements it with the ``limits`` library on
memory (one process), a file shared by the workers of one host, or Redis (every worker of
every instance). Keys are hashed before they reach a storage: usernames and addresses
never sit in Redis.

Two ways to count, by what a race may cost:

- **before the check** (``hit`` first, ``clear`` on success): attempts at a password or a
  code. ``hit`` is atomic in every storage, so parallel guesses cannot overshoot.
- **after a failure** (``blocked`` first, ``hit`` when it failed): where a success must
  cost nothing (client authentication on every token request) or must not reset the count
  (per address: an attacker's own good login would clear it).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Throttle"]


class Throttle(Protocol):
    async def blocked(self, key: str) -> bool:
        """True when ``key`` has used its allowance in the current window."""
        ...

    async def hit(self, key: str) -> bool:
        """Count one for ``key`` now; False (and nothing counted) when it had already used
        its allowance."""
        ...

    async def clear(self, key: str) -> None:
        """Forget ``key``'s count (after a success that proves the secret)."""
        ...
