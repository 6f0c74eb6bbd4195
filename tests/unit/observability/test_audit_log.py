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


async def test_a_full_queue_makes_callers_wait_and_loses_nothing() -> None:
    sink = Sink(delay=0.01)
    audit = AuditLog(sink, SystemClock(), log_json=False,  # type: ignore[arg-type]
                     max_batch=3, max_queue=4)
    await asyncio.gather(*(audit.record(f"e{n}") for n in range(25)))
    assert sorted(e for b in sink.batches for e in b) == sorted(f"e{n}" for n in range(25))
    assert max(len(b) for b in sink.batches) <= 3
    await audit.aclose()


async def test_close_waits_for_every_queued_event() -> None:
    sink = Sink(delay=0.01)
    audit = AuditLog(sink, SystemClock(), log_json=False)  # type: ignore[arg-type]
    callers = [asyncio.create_task(audit.record(f"e{n}")) for n in range(10)]
    await asyncio.sleep(0)  # queued, not yet committed
    await audit.aclose()
    assert sorted(e for b in sink.batches for e in b) == sorted(f"e{n}" for n in range(10))
    await asyncio.gather(*callers)


async def test_a_failed_commit_reaches_its_callers_and_the_writer_goes_on() -> None:
    class Flaky(Sink):
        async def append_audit(self, records: Sequence[AuditRecord]) -> None:
            if any(r.event == "bad" for r in records):
                raise RuntimeError("disk full")
            await super().append_audit(records)

    sink = Flaky()
    audit = AuditLog(sink, SystemClock(), log_json=False)  # type: ignore[arg-type]
    try:
        await audit.record("bad")
    except RuntimeError as exc:
        assert str(exc) == "disk full"
    else:
        raise AssertionError("the caller learns of the failed commit")
    await audit.record("good")
    assert sink.batches == [["good"]]
    await audit.aclose()


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    sink = Sink(delay=0.02)
    audit = AuditLog(sink, SystemClock(), log_json=False)  # type: ignore[arg-type]
    first = asyncio.create_task(audit.record("first"))
    await asyncio.sleep(0.005)  # "first" is being committed
    doomed = asyncio.create_task(audit.record("doomed"))
    kept = asyncio.create_task(audit.record("kept"))
    await asyncio.sleep(0)
    doomed.cancel()
    await asyncio.wait_for(asyncio.gather(first, kept), 2.0)
    assert sorted(e for b in sink.batches for e in b) == ["doomed", "first", "kept"]
    await audit.aclose()
