"""One-time recovery codes for two-step verification.

When a user turns TOTP on (or asks for new codes) they get ``count`` codes of 50 random
bits each (ten base32 characters, shown as ``ABCDE-FGHIJ``); each stands in for an
authenticator code once. At rest only ``HMAC-SHA256(key, user_id ‖ code)`` is kept, under
a key derived from the KEK for this purpose: a copy of the table alone does not let
anyone test guesses offline. Using one is a single conditional update, so a code used
twice at once signs in once. Wrong codes count in the TOTP failure window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

from tessera.application.transaction import Transaction
from tessera.core.clock import Clock
from tessera.core.users import User
from tessera.observability import events
from tessera.store.ports import Store

__all__ = ["RecoveryCodes"]

_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_LENGTH: Final = 10


def _normalise(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


class RecoveryCodes:
    def __init__(self, store: Store, clock: Clock, key: bytes, *, count: int = 10) -> None:
        self._store = store
        self._clock = clock
        self._key = key
        self.count = count

    @staticmethod
    def looks_like(code: str) -> bool:
        """Shaped like a recovery code (not like a six-digit TOTP code)."""
        value = _normalise(code)
        return len(value) == _LENGTH and all(c in _ALPHABET for c in value)

    def _hash(self, user_id: str, code: str) -> str:
        mac = hmac.new(self._key, f"{user_id}\x00{_normalise(code)}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    async def issue(self, tx: Transaction, user: User, *, actor: str) -> list[str]:
        """Fresh codes for ``user`` in the caller's transaction (the old ones stop
        working); returned once, for the user to write down."""
        codes = ["".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
                 for _ in range(self.count)]
        await tx.uow.recovery_codes.replace(
            user.user_id, [self._hash(user.user_id, c) for c in codes], at=self._clock.now())
        tx.audit(events.RECOVERY_CODES_GENERATED, user_id=user.user_id,
                 tenant_id=user.tenant_id, count=len(codes), actor=actor)
        return [f"{c[:5]}-{c[5:]}" for c in codes]

    async def use(self, user: User, code: str) -> bool:
        """Spend one unused code of ``user``; False if it is not one (or was used)."""
        if not self.looks_like(code):
            return False
        async with self._store.unit_of_work() as uow:
            return await uow.recovery_codes.use(user.user_id, self._hash(user.user_id, code),
                                                at=self._clock.now())

    async def remaining(self, user_id: str) -> int:
        async with self._store.unit_of_work(read_only=True) as uow:
            return await uow.recovery_codes.remaining(user_id)
