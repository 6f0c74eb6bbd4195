"""KeyManager over a real store: one active key per algorithm in use, bootstrap adds a
newly configured algorithm without touching the existing ring, rotation per algorithm."""

from __future__ import annotations

import pytest

from tessera.core.clock import FixedClock
from tessera.keys import KeyError_, Sealer
from tessera.keys.manager import KeyManager
from tessera.store.sql import SqlStore

RETIRE = 400.0


def manager(store: SqlStore, clock: FixedClock, algorithm: str,
            id_alg: str | None = None) -> KeyManager:
    return KeyManager(store, Sealer(b"k" * 32), clock, algorithm=algorithm,
                      retire_after=RETIRE, id_token_algorithm=id_alg)


async def states(store: SqlStore) -> dict[str, list[str]]:
    async with store.unit_of_work(read_only=True) as uow:
        rows = await uow.keys.all()
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row.alg, []).append(row.state)
    return {alg: sorted(s) for alg, s in found.items()}


async def test_bootstrap_creates_active_and_next_for_each_algorithm(
        sqlite_store: SqlStore, clock: FixedClock) -> None:
    keys = manager(sqlite_store, clock, "ES256", "RS256")
    assert await keys.bootstrap() is True
    assert await states(sqlite_store) == {"ES256": ["active", "next"],
                                          "RS256": ["active", "next"]}
    assert await keys.bootstrap() is False
    ring = await keys.load()
    assert ring.active.alg == "ES256" and ring.active_for("RS256").alg == "RS256"


async def test_bootstrap_adds_a_newly_configured_algorithm_only(
        sqlite_store: SqlStore, clock: FixedClock) -> None:
    """An RS256-only deployment upgraded to the ES256 default keeps its RS256 ring (ID
    tokens) and gains ES256 keys for access tokens."""
    old = manager(sqlite_store, clock, "RS256")
    await old.bootstrap()
    before = (await old.load()).active.kid
    upgraded = manager(sqlite_store, clock, "ES256", "RS256")
    assert await upgraded.bootstrap() is True
    ring = await upgraded.load()
    assert ring.active.alg == "ES256" and ring.active_for("RS256").kid == before


async def test_rotation_per_algorithm_and_for_all(sqlite_store: SqlStore,
                                                  clock: FixedClock) -> None:
    keys = manager(sqlite_store, clock, "ES256", "RS256")
    await keys.bootstrap()
    ring = await keys.load()
    es, rs = ring.active.kid, ring.active_for("RS256").kid
    changed = await keys.rotate(alg="RS256")
    assert changed[rs] == "retiring" and es not in changed
    assert (await keys.load()).active.kid == es
    changed = await keys.rotate()
    assert changed[es] == "retiring" and len(changed) == 6  # 2 × (promoted, demoted, new)
    assert await states(sqlite_store) == {
        "ES256": ["active", "next", "retiring"],
        "RS256": ["active", "next", "retiring", "retiring"]}
    with pytest.raises(KeyError_, match="no EdDSA keys"):
        await keys.rotate(alg="EdDSA")
