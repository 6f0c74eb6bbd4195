"""Key ring persistence: bootstrap, load, rotate, each through the store.

The ring holds one active key per algorithm in use: ``algorithm`` (access tokens, the
primary) and ``id_token_algorithm`` (ID tokens; OIDC Core §15.1 makes RS256 the one every
relying party supports). Each algorithm's keys rotate on their own.

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
                 retire_after: float, id_token_algorithm: str | None = None) -> None:
        self._store = store
        self._sealer = sealer
        self._clock = clock
        self._algorithm = algorithm
        self._retire_after = retire_after
        self.algorithms: tuple[str, ...] = tuple(dict.fromkeys(
            a for a in (algorithm, id_token_algorithm) if a is not None))
        """Algorithms in use, the primary (access tokens) first."""

    def _seal(self, key: SigningKey) -> SealedKey:
        return SealedKey(kid=key.kid, alg=key.alg, state=key.state.value,
                         sealed_private=self._sealer.seal(key.private_pem(), context=key.kid),
                         created_at=key.created_at, changed_at=key.changed_at)

    def _unseal(self, row: SealedKey) -> SigningKey:
        pem = self._sealer.open(row.sealed_private, context=row.kid)
        return load_signing_key(row.kid, row.alg, row.state, pem, row.created_at,
                                row.changed_at)

    async def bootstrap(self) -> bool:
        """Create an active and a next key for every algorithm in use that has no key in
        the store yet (a new store, or a newly configured algorithm). True if it did.

        An existing ring is never disturbed: an algorithm that still has keys, even
        without an active one, is left to ``rotate``."""
        now = self._clock.now()
        async with self._store.unit_of_work() as uow:
            present = {r.alg for r in await uow.keys.all() if r.state != KeyState.RETIRED.value}
            missing = [alg for alg in self.algorithms if alg not in present]
            for alg in missing:
                for state in (KeyState.ACTIVE, KeyState.NEXT):
                    await uow.keys.add(self._seal(new_signing_key(alg, state=state, now=now)))
        return bool(missing)

    async def load(self) -> KeyRing:
        async with self._store.unit_of_work(read_only=True) as uow:
            rows = await uow.keys.all()
        keys = [self._unseal(r) for r in rows if r.state != KeyState.RETIRED.value]
        if not keys:
            raise KeyError_("no signing keys: run `tessera keys rotate` or start the service")
        return KeyRing(keys, primary=self._algorithm)

    async def fingerprint(self) -> tuple[tuple[str, str], ...]:
        """Cheap change detector for reloads: (kid, state) of every key."""
        async with self._store.unit_of_work(read_only=True) as uow:
            return tuple((r.kid, r.state) for r in await uow.keys.all())

    async def rotate(self, *, actor: str = "cli", alg: str | None = None) -> dict[str, str]:
        """For one algorithm (``alg``) or every algorithm the ring holds keys of: next →
        active, active → retiring, old retiring → retired, plus a new next key. One
        transaction, one ``key.rotated`` event per algorithm rotated. Returns the new
        state of every key that changed."""
        now = self._clock.now()
        result: dict[str, str] = {}
        async with self._store.unit_of_work() as uow:
            keys = [self._unseal(r) for r in await uow.keys.all()
                    if r.state != KeyState.RETIRED.value]
            held = list(dict.fromkeys([*self.algorithms, *(k.alg for k in keys)]))
            if alg is not None and alg not in held:
                raise KeyError_(f"no {alg[:20]} keys to rotate (algorithms in use: "
                                f"{', '.join(held)})")
            for each in [alg] if alg is not None else held:
                group = [k for k in keys if k.alg == each]
                if not group and alg is None:
                    continue
                changes = plan_rotation(group, now=now, retire_after=self._retire_after)
                for kid, state in changes.items():
                    await uow.keys.set_state(kid, state.value, at=now)
                fresh = new_signing_key(each, state=KeyState.NEXT, now=now)
                await uow.keys.add(self._seal(fresh))
                active = next(kid for kid, s in changes.items() if s is KeyState.ACTIVE)
                await self._announce(uow, active, now, actor)
                result.update({kid: state.value for kid, state in changes.items()})
                result[fresh.kid] = KeyState.NEXT.value
            if not result:
                raise KeyError_("no next key to promote; run a rotation bootstrap first")
        return result

    async def _announce(self, uow: UnitOfWork, active_kid: str, now: float, actor: str) -> None:
        await uow.revocations.append(RevocationEvent(
            RevocationKind.KEY_ROTATED, active_kid, now, expires_at=now + self._retire_after,
            data={"active": active_kid}))
        await uow.audit.append([AuditRecord("key.rotated", now,
                                            {"kid": active_kid, "actor": actor})])
