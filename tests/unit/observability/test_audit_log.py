"""AuditLog's group commit: a lone event is committed at once, concurrent events share
a transaction, and every caller returns only once its event is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tessera.core.clock import SystemClock
from tessera.observability.audit import AuditLog
from tessera.store.ports import AuditRecord


class Sink:
    """A store with a batch path (``AuditSink``): records each transaction."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self._delay = delay

    async def append_audit(self, records: Sequence[AuditRecord]) -> None:
        await asyncio.sleep(self._delay)
        self.batches.append([r.event for r in records])

    def unit_of_work(self, *, read_only: bool = False) -> object:
        raise AssertionError("the batch path is used")


async def test_a_lone_event_does_not_wait_for_the_linger() -> None:
    sink = Sink()
    audit = AuditLog(sink, SystemClock(), log_json=False, linger=30.0)  # type: ignore[arg-type]
    await asyncio.wait_for(audit.record("token.issued"), 2.0)
    assert sink.batches == [["token.issued"]]
    await audit.aclose()


async def test_concurrent_events_share_one_transaction_and_each_waits_for_it() -> None:
    sink = Sink(delay=0.01)
    audit = AuditLog(sink, SystemClock(), log_json=False, linger=0.05)  # type: ignore[arg-type]
    await asyncio.gather(*(audit.record(f"e{n}") for n in range(20)))
    assert sorted(e for b in sink.batches for e in b) == sorted(f"e{n}" for n in range(20))
    assert len(sink.batches) <= 2  # the first may go alone; the rest gathered
    await audit.aclose()
