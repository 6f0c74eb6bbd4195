"""What verifiers ask the source of truth for: the snapshot and the range after a cursor
(each with a watermark), and where they report what they applied (logout completion)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tessera.application import admin
from tessera.core.clock import FixedClock
from tessera.core.revocation_snapshot import COLUMNS_MEDIA_TYPE, events_of
from tessera.identity.compose import Identity
from tessera.identity.feed import EVENTS_SCOPE
from tessera.settings import Settings
from tessera.verifier.revocation import RevocationState
from tests.support import AppClient, TesseraDriver, eventually


@pytest.fixture
async def feed(tessera: TesseraDriver) -> AppClient:
    return await tessera.client(scope=EVENTS_SCOPE, audiences=())


async def revoke_users(identity: Identity, count: int) -> None:
    """``count`` user.revoked events (one outbox row each)."""
    for i in range(count):
        user = await admin.create_user(identity.admin, username=f"u{i}", password="long password")
        await admin.revoke(identity.admin, user_id=user.user_id, reason="test", actor="test")


async def page(http: httpx.AsyncClient, app: AppClient, **params: Any) -> httpx.Response:
    return await http.get("/revocations", params=params, auth=app.auth)  # type: ignore[arg-type]


async def ack(http: httpx.AsyncClient, app: AppClient, verifier_id: str, cursor: int,
              **extra: Any) -> httpx.Response:
    return await http.post("/revocations/acks", auth=app.auth,  # type: ignore[arg-type]
                           json={"verifier_id": verifier_id, "service": "orders",
                                 "cursor": cursor, **extra})


async def test_the_range_after_a_cursor_is_paged_and_carries_a_watermark(
        tessera: TesseraDriver, identity: Identity, feed: AppClient, clock: FixedClock
        ) -> None:
    await revoke_users(identity, 3)
    first = await page(tessera.http, feed, after=0, limit=2)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    body = first.json()
    assert [e["seq"] for e in body["events"]] == [1, 2]
    assert body["next"] == 2
    assert body["watermark"] == {"head": 3, "at": clock.now(), "epoch": None}
    rest = (await page(tessera.http, feed, after=body["next"], limit=2)).json()
    assert [e["seq"] for e in rest["events"]] == [3] and rest["next"] is None
    empty = (await page(tessera.http, feed, after=3)).json()
    assert empty == {"events": [], "next": None,
                     "watermark": {"head": 3, "at": clock.now(), "epoch": None}}


async def test_the_snapshot_carries_a_watermark(tessera: TesseraDriver, identity: Identity,
                                                feed: AppClient, clock: FixedClock) -> None:
    await revoke_users(identity, 2)
    body = (await tessera.http.get("/revocations/snapshot", auth=feed.auth)).json()  # type: ignore[arg-type]
    assert body["seq"] == 2 and len(body["events"]) == 2
    assert body["watermark"] == {"head": 2, "at": clock.now(), "epoch": None}


async def test_the_snapshot_as_columns_for_a_client_that_asks(
        tessera: TesseraDriver, identity: Identity, feed: AppClient, clock: FixedClock
        ) -> None:
    """Content negotiation: the columns shape only for ``Accept`` naming it; the same
    events, loaded by a verifier into the same state."""
    await revoke_users(identity, 3)
    old = await tessera.http.get("/revocations/snapshot", auth=feed.auth)  # type: ignore[arg-type]
    new = await tessera.http.get("/revocations/snapshot", auth=feed.auth,  # type: ignore[arg-type]
                                 headers={"accept": f"{COLUMNS_MEDIA_TYPE}, */*;q=0.5"})
    assert old.headers["content-type"] == "application/json"
    assert new.headers["content-type"] == COLUMNS_MEDIA_TYPE
    assert "accept" in new.headers["vary"].lower()
    columns = new.json()
    assert columns["seq"] == 3 and columns["watermark"] == old.json()["watermark"]
    assert events_of(columns) == old.json()["events"]
    from_events, from_columns = RevocationState(), RevocationState()
    from_events.load_snapshot(old.json(), now=clock.now())
    from_columns.load_snapshot(columns, now=clock.now())
    assert len(from_columns) == len(from_events) == 3
    assert from_columns.cursor == 3 and from_columns.fresh_at == clock.now()


@pytest.mark.parametrize("params", [{}, {"after": "-1"}, {"after": "x"}, {"after": "1e3"},
                                    {"after": "٣"}, {"after": "9" * 19},
                                    {"after": "0", "limit": "0"},
                                    {"after": "0", "limit": "1001"}])
async def test_a_bad_cursor_or_limit_is_invalid_request(
        tessera: TesseraDriver, feed: AppClient, params: dict[str, str]) -> None:
    response = await page(tessera.http, feed, **params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_the_range_and_the_acks_need_an_events_client(tessera: TesseraDriver) -> None:
    other = await tessera.client()
    assert (await tessera.http.get("/revocations", params={"after": 0})).status_code == 401
    assert (await page(tessera.http, other, after=0)).status_code == 403
    assert (await ack(tessera.http, other, "v1", 0)).status_code == 403
    anonymous = await tessera.http.post("/revocations/acks", json={
        "verifier_id": "v1", "service": "s", "cursor": 0})
    assert anonymous.status_code == 401


@pytest.mark.parametrize("body", [
    {"verifier_id": "v1", "service": "s"},
    {"verifier_id": "", "service": "s", "cursor": 0},
    {"verifier_id": "has space", "service": "s", "cursor": 0},
    {"verifier_id": "v" * 201, "service": "s", "cursor": 0},
    {"verifier_id": "v1", "service": "s", "cursor": -1},
    {"verifier_id": "v1", "service": "s", "cursor": "7"},
    {"verifier_id": "v1", "service": "s", "cursor": 1.5},
    {"verifier_id": "v1", "service": "s", "cursor": 0, "lag": -1},
    {"verifier_id": "v1", "service": "s", "cursor": 0, "admin": True},
    ["v1", 0],
])
async def test_a_malformed_report_is_invalid_request(
        tessera: TesseraDriver, feed: AppClient, body: Any) -> None:
    response = await tessera.http.post("/revocations/acks", json=body,
                                       auth=feed.auth)  # type: ignore[arg-type]
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


async def test_a_report_must_be_json_and_small(tessera: TesseraDriver, feed: AppClient) -> None:
    form = await tessera.http.post("/revocations/acks", data={"cursor": "1"},
                                   auth=feed.auth)  # type: ignore[arg-type]
    assert form.status_code == 400
    huge = await tessera.http.post("/revocations/acks", auth=feed.auth,  # type: ignore[arg-type]
                                   content=b'{"verifier_id": "' + b"v" * 5000 + b'"}',
                                   headers={"content-type": "application/json"})
    assert huge.status_code == 400


async def test_completion_is_recorded_when_the_last_live_verifier_applied_it(
        tessera: TesseraDriver, identity: Identity, feed: AppClient, clock: FixedClock,
        settings: Settings) -> None:
    for name in ("a", "b"):  # two verifiers, both current (nothing revoked yet)
        assert (await ack(tessera.http, feed, name, 0)).status_code == 204
    clock.advance(1)
    await revoke_users(identity, 1)
    clock.advance(0.02)
    assert (await ack(tessera.http, feed, "a", 1)).status_code == 204
    pending = await identity.completion.status(1)
    assert not pending.done and [v.verifier_id for v in pending.stragglers] == ["b"]
    assert "applied at 1/2 verifiers" in pending.summary() and "b (at 0)" in pending.summary()
    clock.advance(0.003)
    assert (await ack(tessera.http, feed, "b", 1)).status_code == 204
    done = await identity.completion.status(1)
    assert done.done and done.completion is not None
    assert done.completion.verifiers == 2
    assert done.completion.seconds == pytest.approx(0.023)
    assert done.summary() == "applied at 2/2 verifiers in 23 ms"
    histogram = identity.metrics.registry.get_sample_value
    assert histogram("tessera_logout_completion_seconds_count") == 1
    assert histogram("tessera_logout_completion_seconds_bucket", {"le": "0.025"}) == 1


async def test_a_verifier_that_stops_reporting_drops_out_and_is_named(
        tessera: TesseraDriver, identity: Identity, feed: AppClient, clock: FixedClock,
        settings: Settings) -> None:
    await ack(tessera.http, feed, "alive", 0)
    await ack(tessera.http, feed, "gone", 0)
    await revoke_users(identity, 1)
    await ack(tessera.http, feed, "alive", 1)
    assert not (await identity.completion.status(1)).done  # "gone" is still live
    clock.advance(settings.verifiers.live_seconds + 1)
    await ack(tessera.http, feed, "alive", 1)  # its beat; "gone" has been silent too long
    status = await identity.completion.status(1)
    assert status.done and status.completion is not None
    assert status.completion.verifiers == 1
    assert [v.verifier_id for v in status.silent] == ["gone"]
    assert "not live: gone (last report 16.0 s ago)" in status.summary()


async def test_a_report_cannot_acknowledge_events_not_yet_committed(
        tessera: TesseraDriver, identity: Identity, feed: AppClient) -> None:
    await ack(tessera.http, feed, "eager", 10**9)
    (report,) = [v for v in await _registry(identity) if v.verifier_id == "eager"]
    assert report.cursor == 0  # taken as the head: nothing to pre-acknowledge
    await revoke_users(identity, 1)
    assert not (await identity.completion.status(1)).done


async def test_one_client_cannot_speak_for_another_clients_verifier(
        tessera: TesseraDriver, identity: Identity, feed: AppClient) -> None:
    other = await tessera.client(scope=EVENTS_SCOPE, audiences=())
    await ack(tessera.http, feed, "orders-1", 0)
    await revoke_users(identity, 1)
    await ack(tessera.http, other, "orders-1", 1)  # same name, another client: its own entry
    status = await identity.completion.status(1)
    assert {(v.client_id, v.cursor) for v in status.applied} == {(other.client_id, 1)}
    assert {(v.client_id, v.cursor) for v in status.stragglers} == {(feed.client_id, 0)}


async def _registry(identity: Identity) -> list[Any]:
    async with identity.store.unit_of_work(read_only=True) as uow:
        return await uow.verifiers.verifiers()


async def test_a_burst_of_reports_is_one_write_and_keeps_each_arrival_time(
        tessera: TesseraDriver, identity: Identity, feed: AppClient, clock: FixedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b", "c"):
        await ack(tessera.http, feed, name, 0)
    await revoke_users(identity, 1)
    writes = 0
    unit_of_work = identity.store.unit_of_work

    def counting(*, read_only: bool = False) -> Any:
        nonlocal writes
        writes += not read_only
        return unit_of_work(read_only=read_only)

    record_reports = identity.store.record_reports

    async def recording(*args: Any) -> Any:  # its own write transaction (SQLite: one function)
        nonlocal writes
        writes += 1
        return await record_reports(*args)

    monkeypatch.setattr(identity.store, "unit_of_work", counting)
    monkeypatch.setattr(identity.store, "record_reports", recording)
    identity.completion.start()  # the batching writer, as the service runs it
    try:
        for name, late in (("a", 0.010), ("b", 0.005), ("c", 0.004)):
            clock.advance(late)
            assert (await ack(tessera.http, feed, name, 1)).status_code == 204
        status = await _poll_done(identity, 1)
    finally:
        await identity.completion.aclose()
    assert writes == 1, "one transaction for the burst"
    assert status.completion is not None
    assert status.completion.seconds == pytest.approx(0.019, abs=1e-6)  # c's arrival


async def _poll_done(identity: Identity, seq: int) -> Any:
    async def done() -> Any:
        status = await identity.completion.status(seq)
        return status if status.completion is not None else None

    return await eventually(done, what=f"completion of {seq}")


async def test_a_late_report_dates_the_apply_by_its_age(
        tessera: TesseraDriver, identity: Identity, feed: AppClient, clock: FixedClock
        ) -> None:
    await ack(tessera.http, feed, "a", 0)
    await revoke_users(identity, 1)
    clock.advance(0.3)  # applied after 30 ms, reported 270 ms later (batching)
    assert (await ack(tessera.http, feed, "a", 1, age=0.27)).status_code == 204
    status = await identity.completion.status(1)
    assert status.completion is not None
    assert status.completion.seconds == pytest.approx(0.03, abs=1e-6)
    await ack(tessera.http, feed, "a", 1, age=10**3)  # an age never dates before "live"
    (report,) = await _registry(identity)
    assert report.reported_at == clock.now()


async def test_the_batching_writer_survives_a_failed_batch(
        tessera: TesseraDriver, identity: Identity, feed: AppClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error in one flush (a bug, a driver error) drops that batch only: the
    writer goes on and records the next reports (it used to end on anything but a
    StoreError, and no report was recorded again until a restart)."""
    await ack(tessera.http, feed, "a", 0)
    await revoke_users(identity, 1)
    real = identity.completion.flush
    failures = [RuntimeError("a bug in one batch")]

    async def flaky() -> Any:
        if failures:
            raise failures.pop()
        return await real()

    monkeypatch.setattr(identity.completion, "flush", flaky)
    identity.completion.start()
    try:
        assert (await ack(tessera.http, feed, "a", 1)).status_code == 204
        await eventually(lambda: not failures, timeout=5, what="the failing batch")
        assert (await ack(tessera.http, feed, "a", 1)).status_code == 204
        status = await _poll_done(identity, 1)
    finally:
        await identity.completion.aclose()
    assert status.completion is not None and status.completion.verifiers == 1
