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
    codes (kept a minute longer, so a late replay is still recognised as one)."""
    now = identity.clock.now()
    registry = identity.settings.verifiers
    async with identity.store.unit_of_work() as uow:
        events = await uow.revocations.prune(now)
        codes = await uow.codes.prune(now - 60)
        codes += await uow.device_codes.prune(now - 60)
        await uow.reference_tokens.prune(now - 60)
        await uow.assertion_jtis.prune(now)
        await uow.federation.prune_jtis(now)  # past their iat window: a replay fails anyway
        await uow.verifiers.prune(verifiers_before=now - registry.forget_seconds,
                                  completions_before=now - registry.completion_history_seconds)
        if identity.signals is not None:  # settled deliveries, old observations (issue 12)
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
