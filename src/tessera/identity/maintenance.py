"""Housekeeping that keeps the store bounded: expired revocation events and codes, long
silent verifiers and old completion records."""

from __future__ import annotations

import asyncio
import logging

from tessera.identity.compose import Identity
from tessera.store.ports import StoreError

__all__ = ["prune_expired", "run_maintenance"]

_log = logging.getLogger("tessera.identity")


async def prune_expired(identity: Identity) -> tuple[int, int]:
    """Delete revocation events no token can need any more, and expired authorization
    codes (kept a minute longer, so a late replay is still recognised as one).

    One short transaction per table, not one for all: on SQLite the write lock is
    released between them, so a revocation waits for one delete at most (one
    transaction for all eight held it for seconds on a loaded machine)."""
    now = identity.clock.now()
    registry = identity.settings.verifiers
    store = identity.store
    async with store.unit_of_work() as uow:
        events = await uow.revocations.prune(now)
    async with store.unit_of_work() as uow:
        codes = await uow.codes.prune(now - 60)
    async with store.unit_of_work() as uow:
        codes += await uow.device_codes.prune(now - 60)
    async with store.unit_of_work() as uow:
        await uow.reference_tokens.prune(now - 60)
    async with store.unit_of_work() as uow:
        await uow.assertion_jtis.prune(now)
    async with store.unit_of_work() as uow:
        await uow.federation.prune_jtis(now)  # past their iat window: a replay fails anyway
    async with store.unit_of_work() as uow:
        await uow.verifiers.prune(verifiers_before=now - registry.forget_seconds,
                                  completions_before=now - registry.completion_history_seconds)
    if identity.signals is not None:  # settled deliveries, old observations (issue 12)
        async with store.unit_of_work() as uow:
            await uow.signals.prune(now - identity.settings.signals.retention_seconds)
    return events, codes


async def run_maintenance(identity: Identity, *, interval: float = 60.0) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            events, codes = await prune_expired(identity)
            if events or codes:
                _log.info("pruned %d revocation events, %d codes", events, codes)
        except StoreError as exc:
            _log.warning("maintenance skipped: %s", exc)
