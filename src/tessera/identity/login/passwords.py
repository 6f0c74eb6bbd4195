"""Password hashing with argon2id (argon2-cffi; RFC 9106 parameters by default).

Verification of an unknown user still runs one argon2 verify against a dummy hash, so
response time does not reveal which usernames exist.
"""

from __future__ import annotations

import asyncio

import argon2

__all__ = ["PasswordHasher"]


class PasswordHasher:
    def __init__(self, *, time_cost: int = 3, memory_cost: int = 65536,
                 parallelism: int = 4) -> None:
        self._hasher = argon2.PasswordHasher(time_cost=time_cost, memory_cost=memory_cost,
                                             parallelism=parallelism,
                                             type=argon2.Type.ID)
        self._dummy = self._hasher.hash("tessera-dummy-password")

    def hash(self, password: str) -> str:
        return str(self._hasher.hash(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash or self._dummy, password)) \
                and password_hash is not None
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    async def averify(self, password_hash: str | None, password: str) -> bool:
        """Verify off the event loop (argon2 is deliberately slow)."""
        return await asyncio.to_thread(self.verify, password_hash, password)
