"""Key ring persistence: bootstrap, load, rotate, each through the store.

Private keys are sealed (AES-GCM under the KEK) before they reach the store. Rotation is
one transaction: state changes, the new ``next`` key and the ``key.rotated`` outbox event
commit together, so verifiers learn of it through the same channel as revocations.
"""

from __future__ import annotations

from tessera.core.clock import Clock
from tessera.core.revocation import RevocationEvent, RevocationKind
from tessera.keys.errors import KeyError_
from tessera.keys.ring import (
    KeyRing,
    KeyState,
    SigningKey,
    load_signing_key,
    new_signing_key,
    plan_rotation,
)
from tessera.keys.sealing import Sealer
from tessera.store.ports import AuditRecord, SealedKey, Store, UnitOfWork

__all__ = ["KeyManager"]


class KeyManager:
    def __init__(self, store: Store, sealer: Sealer, clock: Clock, *, algorithm: str,
                 retire_after: float) -> None:
        self._store = store
        self._sealer = sealer
        self._clock = clock
        self._algorithm = algorithm
        self._retire_after = retire_after

    def _seal(self, key: SigningKey) -> SealedKey:
        return SealedKey(kid=key.kid, alg=key.alg, state=key.state.value,
                         sealed_private=self._sealer.seal(key.private_pem(), context=key.kid),
                         created_at=key.created_at, changed_at=key.changed_at)

    def _unseal(self, row: SealedKey) -> SigningKey:
        pem = self._sealer.open(row.sealed_private, context=row.kid)
        return load_signing_key(row.kid, row.alg, row.state, pem, row.created_at,
                                row.changed_at)

    async def bootstrap(self) -> bool:
        """Create an active and a next key if the store has none. True if it did."""
        now = self._clock.now()
        async with self._store.unit_of_work() as uow:
            if await uow.keys.all():
                return False
            for state in (KeyState.ACTIVE, KeyState.NEXT):
                await uow.keys.add(self._seal(new_signing_key(self._algorithm, state=state,
                                                              now=now)))
        return True

    async def load(self) -> KeyRing:
        async with self._store.unit_of_work(read_only=True) as uow:
            rows = await uow.keys.all()
        keys = [self._unseal(r) for r in rows if r.state != KeyState.RETIRED.value]
        if not keys:
            raise KeyError_("no signing keys: run `tessera keys rotate` or start the service")
        return KeyRing(keys)

    async def fingerprint(self) -> tuple[tuple[str, str], ...]:
        """Cheap change detector for reloads: (kid, state) of every key."""
        async with self._store.unit_of_work(read_only=True) as uow:
            return tuple((r.kid, r.state) for r in await uow.keys.all())

    async def rotate(self, *, actor: str = "cli") -> dict[str, str]:
        """next → active, active → retiring, old retiring → retired, plus a new next key.
        Returns the new state of every key that changed."""
        now = self._clock.now()
        async with self._store.unit_of_work() as uow:
            keys = [self._unseal(r) for r in await uow.keys.all()
                    if r.state != KeyState.RETIRED.value]
            changes = plan_rotation(keys, now=now, retire_after=self._retire_after)
            for kid, state in changes.items():
                await uow.keys.set_state(kid, state.value, at=now)
            fresh = new_signing_key(self._algorithm, state=KeyState.NEXT, now=now)
            await uow.keys.add(self._seal(fresh))
            active = next(kid for kid, s in changes.items() if s is KeyState.ACTIVE)
            await self._announce(uow, active, now, actor)
        result = {kid: state.value for kid, state in changes.items()}
        result[fresh.kid] = KeyState.NEXT.value
        return result

    async def _announce(self, uow: UnitOfWork, active_kid: str, now: float, actor: str) -> None:
        await uow.revocations.append(RevocationEvent(
            RevocationKind.KEY_ROTATED, active_kid, now, expires_at=now + self._retire_after,
            data={"active": active_kid}))
        await uow.audit.append([AuditRecord("key.rotated", now,
                                            {"kid": active_kid, "actor": actor})])
