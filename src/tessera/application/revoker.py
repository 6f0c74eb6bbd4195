"""Group commit for single-session revocations.

Every transaction that writes the outbox and the audit chain holds their locks from the
append to the commit, so revocations commit one at a time (docs/scale.md): sixteen
administrators revoking one session each would wait for sixteen commits in a row. The
revoker lets them share one: a revocation that arrives while a commit is in flight waits
for it, then every revocation that queued up meanwhile is written by one transaction
(``lifecycle.revoke_sessions``: a fixed number of statements, one outbox insert, one audit
insert) and committed once.

Durability is unchanged: ``revoke`` returns only after the transaction that revoked the
session committed. A failing batch is retried one revocation per transaction, so a
request only ever sees its own error.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from tessera.application import lifecycle
from tessera.application.ports import AuditTrail
from tessera.application.transaction import transaction
from tessera.core.clock import Clock
from tessera.store.ports import Store

__all__ = ["SessionRevoker"]

MAX_BATCH = 256
"""Revocations per transaction at most (short row locks, bounded statements)."""


@dataclass
class _Request:
    sid: str
    reason: str
    actor: str
    token_ttl: float
    done: asyncio.Future[bool] = field(repr=False)


class SessionRevoker:
    def __init__(self, store: Store, audit: AuditTrail, clock: Clock, *,
                 max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._store = store
        self._audit = audit
        self._clock = clock
        self._max_batch = max_batch
        self._pending: list[_Request] = []
        self._drain: asyncio.Task[None] | None = None
        self.batches = 0
        """Transactions committed (for tests and metrics)."""

    async def revoke(self, sid: str, *, reason: str, actor: str, token_ttl: float) -> bool:
        """End session ``sid`` (as ``lifecycle.revoke_session``); True if this call revoked
        it. Returns once the revocation is committed."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(sid, reason, actor, token_ttl, done))
        if self._drain is None or self._drain.done():
            # a task, not the first caller: a caller that is cancelled does not take the
            # others' commit with it
            self._drain = asyncio.get_running_loop().create_task(self._run())
        return await done

    async def _run(self) -> None:
        while self._pending:
            batch = self._pending[:self._max_batch]
            del self._pending[:self._max_batch]
            try:
                results = await self._commit(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], exc)
                    continue
                for request in batch:  # each alone: a request only sees its own error
                    try:
                        _settle(request, (await self._commit([request]))[0])
                    except Exception as single:
                        _settle(request, single)
                continue
            for request, result in zip(batch, results, strict=True):
                _settle(request, result)

    async def _commit(self, batch: list[_Request]) -> list[bool]:
        at = self._clock.now()
        groups: dict[tuple[str, str, float], list[str]] = {}
        for request in batch:
            groups.setdefault((request.reason, request.actor, request.token_ttl),
                              []).append(request.sid)
        revoked: set[str] = set()
        async with transaction(self._store, self._audit) as tx:
            for (reason, actor, ttl), sids in groups.items():
                revoked.update(await lifecycle.end_sessions(
                    tx, sids, at=at, reason=reason, token_ttl=ttl, actor=actor))
        self.batches += 1
        results = []
        for request in batch:  # the same sid twice: the first request revoked it
            results.append(request.sid in revoked)
            revoked.discard(request.sid)
        return results

    async def aclose(self) -> None:
        """Wait for the revocations in flight."""
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await self._drain


def _settle(request: _Request, outcome: bool | Exception) -> None:
    if request.done.done():
        return
    if isinstance(outcome, Exception):
        request.done.set_exception(outcome)
    else:
        request.done.set_result(outcome)
